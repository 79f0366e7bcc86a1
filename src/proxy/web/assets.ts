/**
 * The web UI's only assets, served from the binary (no CDN, nothing
 * inline: the Content-Security-Policy allows scripts and styles from this
 * origin's /web/assets/ alone). The script only enhances: copy buttons and
 * grant countdowns; every page works without it.
 */
export const STYLE = `
:root{--fg:#1c1e21;--muted:#5f6368;--line:#d9dce1;--bg:#fff;--accent:#2f5fd0;--bad:#b3261e;--good:#1e7e34;--code:#f4f5f7}
*{box-sizing:border-box}body{margin:0;overflow-wrap:anywhere;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;margin-right:1rem}header nav a{margin-right:.8rem;color:var(--fg);text-decoration:none}
header nav a[aria-current=page]{color:var(--accent);font-weight:600}header form{margin-left:auto}
main{max-width:80rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}td{overflow-wrap:anywhere}td code,pre{background:var(--code);border-radius:4px}
pre{padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}code{padding:0 .2rem;word-break:break-all}
label{display:block;margin:.6rem 0}input,select,textarea{display:block;width:100%;max-width:32rem;padding:.4rem;font:inherit;border:1px solid var(--line);border-radius:4px}
button,.button{display:inline-block;padding:.4rem .9rem;font:inherit;border:1px solid var(--accent);background:var(--accent);color:#fff;border-radius:4px;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}button.danger{background:var(--bad);border-color:var(--bad)}
.flash{padding:.6rem .8rem;border-radius:4px;margin:.5rem 0 1rem;background:#eef3fe}.flash.error{background:#fdecea;color:var(--bad)}
.muted{color:var(--muted)}.state-APPROVED{color:var(--good)}.state-DENIED,.state-REVOKED,.state-EXPIRED{color:var(--bad)}
.card{border:1px solid var(--line);border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}
.row label{flex:1 1 12rem;margin:.2rem 0}.inline{display:inline}.copy{margin-left:.4rem;padding:.1rem .5rem;font-size:.8rem}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}.rel{color:var(--muted);font-size:.85em}
.grid-wrap{position:relative}
table.grid{table-layout:fixed}table.grid th,table.grid td{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;overflow-wrap:normal;word-break:normal}
table.grid td code{word-break:normal}table.grid .time{width:14rem}table.grid .event{width:12.5rem}table.grid .user{width:8rem}
table.grid .status{width:4.6rem}table.grid .decision{width:7rem}table.grid .more{width:4.2rem}table.grid .identity{width:10rem}
table.grid .kind{width:8rem}table.grid .heartbeat{width:9rem}table.grid .action{width:4.6rem}table.grid .id{width:6rem}
table.grid .state{width:11rem}table.grid .duration{width:4.5rem}
table.grid td.more,table.grid td.action{overflow:visible}table.grid form{margin:0}table.grid button{padding:.1rem .6rem}
table.grid summary{cursor:pointer;color:var(--accent)}
table.grid details[open]>.pop{position:absolute;left:0;right:0;z-index:2;margin-top:.3rem;padding:.5rem .8rem;white-space:normal;background:var(--bg);border:1px solid var(--line);border-radius:6px;box-shadow:0 4px 14px rgba(0,0,0,.15)}
table.grid .pop pre{max-height:60vh;margin:.3rem 0 0}
@media (max-width:40rem){table.grid .wide{display:none}table.grid .time{width:6.5rem}table.grid td.time time{display:none}
table.grid .event{width:auto}table.grid .user{width:5.5rem}table.grid .id{width:5.6rem}table.grid .state{width:6.5rem}main{padding:.6rem}}
`;

export const SCRIPT = `
document.querySelectorAll("[data-copy]").forEach(function (el) {
  var b = document.createElement("button");
  b.type = "button"; b.className = "copy secondary"; b.textContent = "Copy";
  b.addEventListener("click", function () { navigator.clipboard.writeText(el.getAttribute("data-copy")).then(function () { b.textContent = "Copied"; }); });
  el.after(b);
});
// Countdowns run from the proxy's clock (the page's data-now), moved on by the time since the page loaded: not the browser's clock.
var skew = document.body.dataset.now ? Date.parse(document.body.dataset.now) - Date.now() : 0;
function left(ms) { if (ms <= 0) return "ended"; var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60); return (h ? h + "h" : "") + (m ? m + "m" : "") + (s % 60) + "s left"; }
function tick() { document.querySelectorAll("[data-until]").forEach(function (el) { el.textContent = left(Date.parse(el.getAttribute("data-until")) - (Date.now() + skew)); }); }
tick(); setInterval(tick, 1000);
// Passkeys (web/pages/keys.ts): WebAuthn's binary fields travel as base64url, forms as form posts (their CSRF token with them).
function b64u(buf) { var s = ""; new Uint8Array(buf).forEach(function (c) { s += String.fromCharCode(c); }); return btoa(s).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, ""); }
function unb64u(s) { s = s.replace(/-/g, "+").replace(/_/g, "/"); while (s.length % 4) s += "="; return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }); }
function post(url, fields) { return fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields), credentials: "same-origin" }).then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status)); return j; }); }); }
function fields(form) { var f = {}; new FormData(form).forEach(function (v, k) { f[k] = String(v); }); return f; }
function say(form, text) { var p = form.querySelector(".passkey-error") || form.appendChild(Object.assign(document.createElement("p"), { className: "error passkey-error", role: "alert" })); p.textContent = text; }
// Adding a passkey: the begin (with the password before the first), a check with one you have when it asks, then the browser's create.
function answerOf(cred) {
  return JSON.stringify({ id: cred.id, rawId: b64u(cred.rawId), type: cred.type, clientExtensionResults: cred.getClientExtensionResults(),
    response: { clientDataJSON: b64u(cred.response.clientDataJSON), authenticatorData: b64u(cred.response.authenticatorData), signature: b64u(cred.response.signature), userHandle: cred.response.userHandle ? b64u(cred.response.userHandle) : undefined } });
}
function getWith(o) {
  o.challenge = unb64u(o.challenge);
  (o.allowCredentials || []).forEach(function (c) { c.id = unb64u(c.id); });
  return navigator.credentials.get({ publicKey: o });
}
document.querySelectorAll("[data-passkey-register]").forEach(function (form) {
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var f = fields(form);
    if (f.password_confirm !== undefined && f.password !== f.password_confirm) { say(form, "the two passwords differ"); return; }
    var begin = form.getAttribute("data-begin") || "/web/keys/begin";
    var first = { _csrf: f._csrf || "" };
    if (f.password !== undefined && !form.hasAttribute("data-begin")) { first.password = f.password; if (f.otp !== undefined) first.otp = f.otp; }
    post(begin, first).then(function (o) {
      if (!o.check) return o;
      return getWith(o.check).then(function (cred) { return post(begin, { _csrf: f._csrf || "", check: answerOf(cred) }); });
    }).then(function (o) {
      o.challenge = unb64u(o.challenge); o.user.id = unb64u(o.user.id);
      (o.excludeCredentials || []).forEach(function (c) { c.id = unb64u(c.id); });
      return navigator.credentials.create({ publicKey: o });
    }).then(function (cred) {
      var r = { id: cred.id, rawId: b64u(cred.rawId), type: cred.type, clientExtensionResults: cred.getClientExtensionResults(),
        response: { clientDataJSON: b64u(cred.response.clientDataJSON), attestationObject: b64u(cred.response.attestationObject), transports: cred.response.getTransports ? cred.response.getTransports() : [] } };
      f.response = JSON.stringify(r); delete f.otp;
      if (!form.hasAttribute("data-begin")) delete f.password;
      return post(form.getAttribute("data-finish") || "/web/keys", f);
    }).then(function (j) { location.assign(j.next); }, function (err) { say(form, err.message); });
  });
});
// A passkey's answer to a challenge: the form's fields to data-begin (a challenge back), the browser's WebAuthn, then the fields and the answer to data-finish, whose JSON names the next page.
document.querySelectorAll("[data-passkey-get]").forEach(function (form) {
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var f = fields(form);
    if (e.submitter && e.submitter.name) f[e.submitter.name] = e.submitter.value;
    post(form.getAttribute("data-begin"), f).then(getWith).then(function (cred) {
      f.response = answerOf(cred); delete f.password;
      return post(form.getAttribute("data-finish"), f);
    }).then(function (j) { location.assign(j.next); }, function (err) { say(form, err.message); });
  });
});
`;
