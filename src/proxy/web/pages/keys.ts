/**
 * Passkeys and security keys: the signed-in user's own (proxy/webauthn.ts).
 * Adding one takes the browser's WebAuthn (the page's script: web/assets.ts);
 * without scripts the page says so.
 */
import { html } from "hono/html";
import type { WebAuthnDevice } from "../../../auth/webauthn.ts";

export function keysPage(devices: Omit<WebAuthnDevice, "public_key">[], csrf: string, has: { password: boolean; otp: boolean }) {
  // A change is proven: with one of your passkeys (the browser asks it first), or before the first, your password (and code) again.
  const first = devices.length === 0;
  return html`<h1>Passkeys and security keys</h1>
    <p class="muted">Sign in with one of these instead of an authenticator code. A passkey lives on this device or your phone; a security key plugs in. Adding or removing one asks one you have first.</p>
    ${devices.length
      ? html`<table>
          <thead><tr><th>Name</th><th>Added</th><th>Last used</th><th></th></tr></thead>
          <tbody>
            ${devices.map(
              (d) => html`<tr>
                <td>${d.name}</td><td>${d.added}</td><td>${d.last_used ?? "never"}</td>
                <td><form method="post" action="/web/keys/${encodeURIComponent(d.id)}/delete" data-passkey-get data-begin="/web/keys/${encodeURIComponent(d.id)}/delete/begin" data-finish="/web/keys/${encodeURIComponent(d.id)}/delete" class="inline"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="secondary">Remove</button></form></td>
              </tr>`,
            )}
          </tbody>
        </table>`
      : html`<p>None yet.</p>`}
    <h2>Add one</h2>
    ${first && !has.password
      ? html`<p class="muted">Your account has no password at azgate (single sign-on): adding a passkey is not offered for it.</p>`
      : html`<form data-passkey-register method="post" action="/web/keys">
          <input type="hidden" name="_csrf" value="${csrf}">
          <label>Name <input name="name" required maxlength="40" placeholder="laptop, yubikey"></label>
          ${first ? html`<label>Your password, again <input type="password" name="password" autocomplete="current-password" required></label>` : ""}
          ${first && has.otp ? html`<label>Authenticator code <input name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>` : ""}
          <button type="submit">Add a passkey or security key</button>
          <noscript><p class="error">Adding one needs this page's script (the browser's WebAuthn).</p></noscript>
        </form>`}`;
}

/** Sign-in with the password, then a passkey or security key. */
export function passkeySignIn(next: string, passkeyOnly = false) {
  return html`<h1>Sign in with a passkey</h1>
    <form data-passkey-get data-begin="/web/login/passkey/begin" data-finish="/web/login/passkey" method="post" action="/web/login/passkey">
      ${next ? html`<input type="hidden" name="next" value="${next}">` : ""}
      <label>User <input name="user" autocomplete="username webauthn" required autofocus></label>
      <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
      <button type="submit">Continue with a passkey or security key</button>
      <noscript><p class="error">This needs the page's script (the browser's WebAuthn).</p></noscript>
    </form>
    ${passkeyOnly ? "" : html`<p><a href="/web/login">Sign in without a passkey</a></p>`}`;
}

/**
 * A CLI's step in the browser (proxy/browser-flows.ts): a login (the
 * password, then the passkey), or a fresh check (the passkey alone) that
 * says what it is for. The browser then goes to the CLI's loopback.
 */
export function cliStepPage(id: string, step: { purpose: "login" | "check"; user?: string; what?: string }) {
  const urls = { begin: `/web/cli/${id}/begin`, finish: `/web/cli/${id}` };
  if (step.purpose === "login") {
    return html`<h1>Sign in the azgate CLI</h1>
      <p>The <code>azgate login</code> you started in a terminal waits for this sign-in. If you did not start one, close this page.</p>
      <form data-passkey-get data-begin="${urls.begin}" data-finish="${urls.finish}" method="post" action="${urls.finish}">
        <label>User <input name="user" autocomplete="username webauthn" value="${step.user ?? ""}" required ${step.user ? "" : "autofocus"}></label>
        <label>Password <input type="password" name="password" autocomplete="current-password" required ${step.user ? "autofocus" : ""}></label>
        <button type="submit">Sign in with a passkey or security key</button>
        <noscript><p class="error">This needs the page's script (the browser's WebAuthn).</p></noscript>
      </form>`;
  }
  return html`<h1>Confirm with your passkey</h1>
    <p>The azgate CLI, signed in as <strong>${step.user}</strong>, asks for a fresh check to <strong>${step.what}</strong>. If you did not just run such a command, close this page.</p>
    <form data-passkey-get data-begin="${urls.begin}" data-finish="${urls.finish}" method="post" action="${urls.finish}">
      <button type="submit">Confirm with a passkey or security key</button>
      <noscript><p class="error">This needs the page's script (the browser's WebAuthn).</p></noscript>
    </form>`;
}
