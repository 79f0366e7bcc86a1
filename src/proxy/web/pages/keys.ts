/**
 * Passkeys and security keys: the signed-in user's own (proxy/webauthn.ts).
 * Adding one takes the browser's WebAuthn (the page's script: web/assets.ts);
 * without scripts the page says so.
 */
import { html } from "hono/html";
import type { WebAuthnDevice } from "../../../auth/webauthn.ts";

export function keysPage(devices: Omit<WebAuthnDevice, "public_key">[], csrf: string) {
  return html`<h1>Passkeys and security keys</h1>
    <p class="muted">Sign in with one of these instead of an authenticator code. A passkey lives on this device or your phone; a security key plugs in.</p>
    ${devices.length
      ? html`<table>
          <thead><tr><th>Name</th><th>Added</th><th>Last used</th><th></th></tr></thead>
          <tbody>
            ${devices.map(
              (d) => html`<tr>
                <td>${d.name}</td><td>${d.added}</td><td>${d.last_used ?? "never"}</td>
                <td><form method="post" action="/web/keys/${encodeURIComponent(d.id)}/delete" class="inline"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="secondary">Remove</button></form></td>
              </tr>`,
            )}
          </tbody>
        </table>`
      : html`<p>None yet.</p>`}
    <h2>Add one</h2>
    <form data-passkey-register method="post" action="/web/keys">
      <input type="hidden" name="_csrf" value="${csrf}">
      <label>Name <input name="name" required maxlength="40" placeholder="laptop, yubikey"></label>
      <button type="submit">Add a passkey or security key</button>
      <noscript><p class="error">Adding one needs this page's script (the browser's WebAuthn).</p></noscript>
    </form>`;
}

/** Sign-in with the password, then a passkey or security key. */
export function passkeySignIn(next: string) {
  return html`<h1>Sign in with a passkey</h1>
    <form data-passkey-login method="post" action="/web/login/passkey">
      ${next ? html`<input type="hidden" name="next" value="${next}">` : ""}
      <label>User <input name="user" autocomplete="username webauthn" required autofocus></label>
      <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
      <button type="submit">Continue with a passkey or security key</button>
      <noscript><p class="error">This needs the page's script (the browser's WebAuthn).</p></noscript>
    </form>
    <p><a href="/web/login">Sign in with an authenticator code instead</a></p>`;
}
