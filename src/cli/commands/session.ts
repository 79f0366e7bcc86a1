import type { Argv } from "yargs";
import { systemClock } from "../../util/clock.ts";
import { DESCRIBE } from "../catalog.ts";
import { X509Certificate } from "node:crypto";
import { AzgateError } from "../../errors/index.ts";
import { ApiClient } from "../../api/client.ts";
import { ssoLogin } from "../../client/sso-login.ts";
import { browserLogin } from "../../client/browser-mfa.ts";
import { establishTrust, PROXY_CA_FILE_ENV, proxyBaseUrl, proxyCaFromArgs } from "../../api/trust.ts";
import { currentProfileName, listProfileNames, loadCredentials, loadProfile, rememberTrustedCa, removeCredentials, saveProfile, trustedCa, type Profile } from "../../client/profile.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../pki/keys.ts";
import { newTotpSecret, totpFor } from "../../auth/totp.ts";
import { formatDuration, parseDuration } from "../../util/duration.ts";
import { ask, confirm } from "../prompt.ts";
import { fields, print, printErr, structured } from "../output.ts";
import { run, subcommandNeeded } from "../run.ts";
import { profileClient } from "../connect.ts";
import type { AccessRequest } from "../../resources/access-request.ts";
import { identityName } from "../../azure/resource-id.ts";
import { profileCas } from "../../client/rotation.ts";
import { pemPin } from "../../pki/pin.ts";

interface TrustArgs {
  proxy?: string;
  "ca-pin"?: string;
  "proxy-ca-file"?: string;
  insecure?: boolean;
}

const trustOptions = <T>(a: Argv<T>) =>
  a
    .option("proxy", { type: "string", describe: "Proxy address, host:port (port 3080 when omitted)" })
    .option("ca-pin", { type: "string", describe: "Expected CA pin, sha256:... (from azgate admin status)" })
    .option("proxy-ca-file", { type: "string", describe: `CA (PEM) of the TLS certificate the proxy's address serves, when an ingress or an operator certificate fronts it (or ${PROXY_CA_FILE_ENV})` })
    .option("insecure", { type: "boolean", describe: "Do not verify the proxy (throwaway demos only)" });

/** Trust in a proxy: a CA confirmed once (at accept-invite or login, by pin or at the prompt) is remembered for it. */
async function trust(argv: TrustArgs, proxy: string) {
  const saved = await loadProfile(proxy).catch(() => null);
  // Every host CA the profile trusts (two while the cluster's CA rotates), else the one remembered for the proxy.
  const remembered = await trustedCa(proxy);
  const known = saved?.ca_pem ? (saved.ca_pems ?? [saved.ca_pem]) : remembered ? [remembered] : undefined;
  const res = await establishTrust({
    proxy,
    caPin: argv["ca-pin"],
    insecure: argv.insecure,
    knownCaPems: known,
    proxyCaPems: proxyCaFromArgs(argv["proxy-ca-file"]) ?? saved?.proxy_ca_pems,
    confirm: (pin, cluster) => {
      process.stderr.write(`The proxy ${proxy} (cluster "${cluster}") presents a CA not seen before.\nCA pin ${pin}\n`);
      return confirm("Trust this CA and continue?");
    },
  });
  if (res.target.ca_pem && !res.target.insecure) await rememberTrustedCa(proxy, res.target.ca_pem);
  return res;
}

export function sessionCommands(y: Argv) {
  return y
    .command<TrustArgs & { user?: string; ttl?: string; auth?: string; browser?: string; "mfa-mode": string }>(
      "login",
      DESCRIBE.login,
      (a) =>
        trustOptions(a)
          .option("user", { type: "string", describe: "User name (local users)" })
          .option("ttl", { type: "string", describe: "Shorter certificate lifetime (capped by your roles)" })
          .option("auth", { type: "string", describe: "Sign in with this SSO connector (github, oidc or saml) instead of a password" })
          .option("browser", { type: "string", describe: 'With --auth or --mfa-mode browser: "none" prints the URL instead of opening a browser' })
          .option("mfa-mode", { type: "string", choices: ["auto", "browser", "otp"], default: "auto", describe: "The second factor: browser (a passkey or security key in the proxy's web page), otp (a code), auto (what the cluster asks)" }),
      run(async (argv) => {
        const previous = await loadProfile();
        const proxy = argv.proxy ?? previous?.proxy;
        if (!proxy) throw new AzgateError("bad_parameter", "--proxy is required for the first login");
        const { target, ping } = await trust(argv, proxy);
        const ttlMs = argv.ttl ? parseDuration(argv.ttl, "--ttl") : undefined;
        if (argv.auth) {
          if (argv.browser !== undefined && argv.browser !== "none") throw new AzgateError("bad_parameter", '--browser takes only "none" (the default opens the system browser or $BROWSER)');
          const sso = await ssoLogin({ target, connector: argv.auth, browser: argv.browser, ttlMs, say: (line) => printErr(line), pasteFrom: process.stdin });
          const profile: Profile = { proxy, user: sso.user, cluster: ping.cluster_name, ca_pem: target.ca_pem, proxy_ca_pems: target.proxy_ca_pems, insecure: target.insecure };
          await saveProfile(profile, sso.keyPem, sso.certPem);
          return print(statusText(statusData(profile, sso.certPem, await certIdentity(sso.certPem)), true));
        }
        if (argv.browser !== undefined && argv.browser !== "none") throw new AzgateError("bad_parameter", '--browser takes only "none" (the default opens the system browser or $BROWSER)');
        const knownUser = argv.user ?? (previous?.proxy === proxy ? previous.user : undefined);
        const mode = argv["mfa-mode"] === "auto" ? (ping.second_factor === "webauthn" ? "browser" : ping.second_factor) : argv["mfa-mode"];
        if (mode === "browser") {
          // A passkey needs a browser (WebAuthn): the proxy's page asks the password and the passkey, the certificate comes back here.
          const done = await browserLogin({ target, user: knownUser, browser: argv.browser, ttlMs, say: (line) => printErr(line), pasteFrom: process.stdin });
          const profile: Profile = { proxy, user: done.user, cluster: ping.cluster_name, ca_pem: target.ca_pem, proxy_ca_pems: target.proxy_ca_pems, insecure: target.insecure };
          await saveProfile(profile, done.keyPem, done.certPem);
          return print(statusText(statusData(profile, done.certPem, await certIdentity(done.certPem)), true));
        }
        const user = knownUser ?? (await ask("User: ")).trim();
        const password = await ask(`Enter password for ${user}: `, { secret: true });
        // on and optional: a code if the user has one; otherwise the passkey (--mfa-mode browser).
        const otp =
          mode === "otp" ? (await ask("Enter your OTP token: ")).trim() : mode === "on" || mode === "optional" ? (await ask("Enter your OTP token (or press Enter if you use a passkey; then run azgate login --mfa-mode browser if this fails): ")).trim() : undefined;
        const keys = await generateKeyPair();
        const res = await new ApiClient(target).call<{ cert_pem: string; expires: string }>("POST", "/v1/auth/login", {
          user,
          password,
          otp,
          public_key_pem: await publicKeyToPem(keys.publicKey),
          ttl_ms: ttlMs,
        });
        const profile: Profile = { proxy, user, cluster: ping.cluster_name, ca_pem: target.ca_pem, proxy_ca_pems: target.proxy_ca_pems, insecure: target.insecure };
        await saveProfile(profile, await privateKeyToPem(keys.privateKey), res.cert_pem);
        print(statusText(statusData(profile, res.cert_pem, await certIdentity(res.cert_pem)), true));
      }),
    )
    .command<{ proxy?: string }>(
      "logout",
      DESCRIBE.logout,
      (a) => a.option("proxy", { type: "string", describe: "Only this proxy's profile" }),
      run(async (argv) => {
        const removed = await removeCredentials(argv.proxy);
        print(removed.length ? `Logged out ${removed.join(", ")}.` : "Not logged in.");
      }),
    )
    .command<{ format: string }>(
      "status",
      DESCRIBE.status,
      (a) => a.option("format", { alias: "f", choices: ["text", "json", "yaml"], default: "text", describe: "Output format (-f json, as tsh status -f json)" }),
      run(async (argv) => {
        // Every profile, the current one first and marked, as tsh status lists them.
        const current = await currentProfileName();
        // The active profile asks the proxy first: its call follows a rotation of the cluster's CAs
        // (client/rotation.ts), which status then shows from the profile read after it.
        const first = current ? await loadProfile(current) : null;
        const firstCreds = first ? await loadCredentials(first) : null;
        const asked = firstCreds && certEnd(firstCreds.certPem).getTime() > systemClock.now() ? await askProxy() : null;
        const all: { profile: Profile; certPem: string }[] = [];
        for (const name of [current, ...(await listProfileNames()).filter((n) => n !== current)]) {
          const profile = name ? await loadProfile(name) : null;
          const creds = profile ? await loadCredentials(profile) : null;
          if (profile && creds) all.push({ profile, certPem: creds.certPem });
        }
        const mine = current ? all.find((p) => proxyBaseUrl(p.profile.proxy) === proxyBaseUrl(current)) : undefined;
        if (!mine) throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME");
        // The current profile's view is the proxy's when it answers; the certificate's identity is decoded
        // (a parser that costs start-up time) only for the views that need it.
        const active = statusData(mine.profile, mine.certPem, asked && "me" in asked ? asked.me : await certIdentity(mine.certPem));
        if (asked) Object.assign(active, "me" in asked ? { view: "proxy", active_requests: asked.grants.map((g) => g.request_id), access_grants: asked.grants } : { proxy_error: asked.error });
        const others = await Promise.all(all.filter((p) => p !== mine).map(async (p) => statusData(p.profile, p.certPem, await certIdentity(p.certPem))));
        if (argv.format === "text") print([statusText(active, true), ...others.map((p) => statusText(p, false))].join("\n\n"));
        else print(await structured({ active, profiles: others }, argv.format as "json"));
      }),
    )
    .command("users", DESCRIBE.users, (u) =>
      u
        .command<TrustArgs & { token: string; "otp-secret"?: string }>(
          "accept-invite <token>",
          "Set a password (and authenticator) with an invite",
          (a) => trustOptions(a).positional("token", { type: "string", demandOption: true }).option("otp-secret", { type: "string", describe: "Use this base32 TOTP secret instead of a new one" }),
          run(async (argv) => {
            if (!argv.proxy) throw new AzgateError("bad_parameter", "--proxy is required");
            const { target } = await trust(argv, argv.proxy);
            const api = new ApiClient(target);
            const invite = await api.call<{ user: string; second_factor: string }>("GET", `/v1/invites/${encodeURIComponent(argv.token)}`);
            if (invite.second_factor === "webauthn") throw new AzgateError("bad_parameter", "this cluster signs in with a passkey or security key: open the invite link in a browser to register one");
            const password = await ask(`New password for ${invite.user} (12 characters or more): `, { secret: true });
            if ((await ask("Repeat the password: ", { secret: true })) !== password) throw new AzgateError("bad_parameter", "the two passwords differ");
            let otp_secret: string | undefined;
            let otp_code: string | undefined;
            if (invite.second_factor === "otp" || invite.second_factor === "on") {
              otp_secret = argv["otp-secret"]?.toUpperCase() ?? newTotpSecret();
              process.stderr.write(`Add this key to your authenticator app (TOTP, 6 digits, 30 s):\n  ${otp_secret}\n  ${totpFor(invite.user, otp_secret, "azgate").toString()}\n`);
              otp_code = (await ask("Code shown by the app: ")).trim();
            }
            await api.call("POST", `/v1/invites/${encodeURIComponent(argv.token)}/accept`, { password, otp_secret, otp_code });
            print(`User ${invite.user} is ready. Log in with: azgate login --proxy ${argv.proxy} --user ${invite.user}`);
          }),
        )
        .demandCommand(...subcommandNeeded("users")),
    );
}

/**
 * Status is what one runs when something is wrong: a proxy that does not answer costs it this long, and
 * then status shows the certificate's view and says so.
 */
const STATUS_PROXY_TIMEOUT_MS = 2_000;

/**
 * What applies now, asked of the proxy (both calls at once: one round trip's wait): the roles, traits and
 * Azure identities the backend holds (a change since login applies on the next request, so the
 * certificate's copy may be old), and the access grants (approved requests whose window has not ended;
 * as tsh status, active_requests lists their IDs). When the proxy cannot be asked, the certificate's
 * view stays, marked as such, with the reason.
 */
async function askProxy(): Promise<{ me: IdentityView; grants: AccessGrantSummary[] } | { error: string }> {
  try {
    const client = await profileClient();
    const [me, { items }] = await Promise.all([
      client.call<IdentityView>("GET", "/v1/whoami", undefined, { timeoutMs: STATUS_PROXY_TIMEOUT_MS }),
      client.call<{ items: AccessRequest[] }>("GET", "/v1/requests?filter=mine", undefined, { timeoutMs: STATUS_PROXY_TIMEOUT_MS }),
    ]);
    const now = systemClock.now();
    const grants = items.filter((r) => r.spec.state === "APPROVED" && r.spec.grant && Date.parse(r.spec.grant.not_after) > now);
    return { me, grants: grants.map((r) => ({ request_id: r.metadata.name, app: r.spec.app, azure_identity: r.spec.azure_identity, not_before: r.spec.grant!.not_before, not_after: r.spec.grant!.not_after })) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function grantLine(g: AccessGrantSummary, now: number): string {
  const starts = Date.parse(g.not_before);
  const when = starts > now ? `starts in ${formatDuration(starts - now)}, then ${formatDuration(Date.parse(g.not_after) - starts)}` : `${formatDuration(Date.parse(g.not_after) - now)} left`;
  return `${identityName(g.azure_identity)} on ${g.app}, ${when} (request ${g.request_id})`;
}

interface AccessGrantSummary {
  request_id: string;
  app: string;
  azure_identity: string;
  not_before: string;
  not_after: string;
}

/** Who a session is: its name, roles, traits and Azure identities (the proxy's whoami, or its certificate's copy). */
interface IdentityView {
  name: string;
  roles: string[];
  traits: Record<string, string[]>;
  azure_identities?: string[];
}

/** The identity a certificate carries, as of login. */
async function certIdentity(certPem: string): Promise<IdentityView> {
  const [{ x509 }, { identityOf }] = await Promise.all([import("../../pki/x509.ts"), import("../../pki/certificate.ts")]);
  return identityOf(new x509.X509Certificate(certPem));
}

/** When a certificate ends, read by the runtime's own parser (node:crypto, on Node and Deno). */
function certEnd(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}

type StatusData = ReturnType<typeof statusData>;

/** The CA that issued a certificate, by its name's organisation and unit ("azgate user CA, generation 1" after a rotation). */
function issuerName(cert: X509Certificate): string {
  const parts = cert.issuer.split("\n").filter((l) => /^(O|OU)=/.test(l)).map((l) => l.replace(/^(O|OU)=/, ""));
  return parts.join(", ") || cert.issuer;
}

/** One profile as tsh status -f json shows it (Teleport's field names), plus whether it has expired; `id` is the proxy's view or the certificate's. */
function statusData(profile: Profile, certPem: string, id: IdentityView) {
  const cert = new X509Certificate(certPem);
  const end = new Date(cert.validTo);
  return {
    profile_url: proxyBaseUrl(profile.proxy),
    username: id.name,
    cluster: profile.cluster,
    roles: id.roles,
    traits: id.traits,
    logins: [] as string[],
    active_requests: [] as string[],
    azure_identities: id.azure_identities ?? [],
    access_grants: undefined as AccessGrantSummary[] | undefined,
    /** Where roles, traits and identities come from: the proxy (now), or the certificate (as of login). */
    view: "certificate" as "certificate" | "proxy",
    proxy_error: undefined as string | undefined,
    valid_until: end.toISOString(),
    expired: end.getTime() <= systemClock.now(),
    /** The host CAs the profile trusts (two while they rotate), and the CA its certificate is from: a rotation followed shows here. */
    ca_pins: profileCas(profile).map(pemPin),
    certificate_issuer: issuerName(cert),
  };
}

function statusText(s: StatusData, active: boolean): string {
  const left = new Date(s.valid_until).getTime() - systemClock.now();
  return (
    (active ? "> " : "  ") +
    fields([
      ["Profile URL", s.profile_url],
      ["Logged in as", s.username],
      ["Cluster", s.cluster],
      ["Roles", s.roles.join(", ") || "(none)"],
      ["Azure identities", s.azure_identities.join(", ") || "(none)"],
      ...(s.access_grants ?? []).map((g): [string, string] => ["Access grant", grantLine(g, systemClock.now())]),
      ["Valid until", `${s.valid_until} [${s.expired ? "EXPIRED" : `valid for ${formatDuration(left)}`}]`],
      ["Certificate from", s.certificate_issuer],
      ...(s.proxy_error ? ([["Note", `the proxy could not be asked (${s.proxy_error}): roles and Azure identities above are the certificate's, as of login, and access grants are unknown`]] as [string, string][]) : []),
      // Two while the cluster's host CA rotates: the profile follows it at its calls (client/rotation.ts).
      ...s.ca_pins.map((p): [string, string] => ["Cluster CA pin", p]),
    ]).replace(/\n/g, "\n  ")
  );
}
