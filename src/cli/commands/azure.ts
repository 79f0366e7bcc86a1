/**
 * Workstation commands for Azure apps: `apps login|logout`, `az ...` and
 * `proxy azure|az`.
 */
import type { Argv } from "yargs";
import { x509 } from "../../pki/x509.ts";
import { AzgateError } from "../../errors/index.ts";
import { loadCredentials, loadProfile, type Profile } from "../../client/profile.ts";
import { ApiClient } from "../../client/api.ts";
import { proxyBaseUrl } from "../../client/trust.ts";
import { generateKeyPair, importPrivateKeyPem, privateKeyToPem, publicKeyToPem } from "../../pki/keys.ts";
import { createLocalCa } from "../../client/local-ca.ts";
import { azureConfigDir, listAppSessions, loadAppSession, removeAppSession, saveAppSession } from "../../client/app-store.ts";
import { chooseAzureIdentity } from "../../client/identity-choice.ts";
import { azureEnv, startAzureProxy, type RunningAzureProxy } from "../../client/azure-proxy.ts";
import { azVersion, findAz, runAz, tokenSecret, usesMsal } from "../../client/az.ts";
import type { AppView } from "../../proxy/apps.ts";
import { print } from "../output.ts";
import { run, untilSignalled } from "../run.ts";

async function session(): Promise<{ profile: Profile; client: ApiClient; target: { baseUrl: string; ca_pem?: string; insecure?: boolean } }> {
  const profile = await loadProfile();
  const creds = profile ? await loadCredentials(profile) : null;
  if (!profile || !creds) throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME");
  const target = { baseUrl: proxyBaseUrl(profile.proxy), ca_pem: profile.ca_pem, insecure: profile.insecure };
  return { profile, client: new ApiClient(target, creds), target };
}

/** Starts the local proxy for an app session stored on disk; the caller closes it. */
async function openAzure(appName: string | undefined, port = 0): Promise<{ proxy: RunningAzureProxy; env: Record<string, string>; app: string; identity: string; expires: Date }> {
  const { profile, target } = await session();
  let app = appName;
  if (!app) {
    const sessions = await listAppSessions(profile);
    if (sessions.length === 0) throw new AzgateError("not_found", "please login using 'azgate apps login' first");
    const live = sessions.filter((s) => Date.parse(s.expires) > Date.now());
    if (live.length > 1) throw new AzgateError("bad_parameter", `multiple apps are available (${live.map((s) => s.app).join(", ")}), please specify one with --app`);
    // Only expired sessions: take the latest, so the error below says it expired rather than "not logged in".
    app = live[0]?.app ?? sessions.sort((a, b) => Date.parse(b.expires) - Date.parse(a.expires))[0].app;
  }
  const stored = await loadAppSession(profile, app);
  if (!stored) throw new AzgateError("not_found", `not logged into app "${app}"; run azgate apps login ${app}`);
  const expires = new x509.X509Certificate(stored.certPem).notAfter;
  if (expires.getTime() <= Date.now()) throw new AzgateError("cert_expired", `your session for app "${app}" expired at ${expires.toISOString()}; run azgate apps login ${app} again`);
  const secret = tokenSecret();
  const proxy = await startAzureProxy({
    creds: { app, identity: stored.info.azure_identity, tenant: stored.info.tenant, key: await importPrivateKeyPem(stored.keyPem), certPem: stored.certPem, expires },
    target,
    ca: stored.ca,
    secret,
    port,
  });
  const env = azureEnv({ port: proxy.port, secret, configDir: azureConfigDir(profile, app), caBundle: stored.bundleFile, localCa: stored.caFile });
  return { proxy, env, app, identity: stored.info.azure_identity, expires };
}

export function appLoginCommands(a: Argv) {
  return a
    .command<{ app: string; "azure-identity"?: string; debug?: boolean }>(
      "login <app>",
      "Log into an app; for Azure apps, choose the Azure identity and run az login through azgate",
      (b) =>
        b
          .positional("app", { type: "string", demandOption: true })
          .option("azure-identity", { type: "string", describe: "(Azure apps) managed identity: full resource ID or its name" })
          .option("debug", { type: "boolean", describe: "Pass --debug to az login" }),
      run(async (argv) => {
        const { profile, client } = await session();
        const { items } = await client.call<{ items: AppView[] }>("GET", "/v1/apps");
        const app = items.find((i) => i.name === argv.app);
        if (!app) throw new AzgateError("not_found", `app "${argv.app}" not found; azgate apps ls shows the apps you can use`);
        const identity = chooseAzureIdentity(app.azure_identities, argv["azure-identity"]);
        const keys = await generateKeyPair();
        const res = await client.call<{ cert_pem: string; expires: string; tenant_id: string | null }>("POST", "/v1/apps/login", {
          app: app.name,
          azure_identity: identity,
          public_key_pem: await publicKeyToPem(keys.publicKey),
        });
        const ca = await createLocalCa(new Date(res.expires));
        await saveAppSession(profile, { app: app.name, azure_identity: identity, tenant: res.tenant_id ?? "00000000-0000-0000-0000-000000000000", expires: res.expires }, await privateKeyToPem(keys.privateKey), res.cert_pem, ca);
        const done = [`Logged into Azure app "${app.name}".`, `Your identity: ${identity}`];
        let az: string;
        try {
          az = findAz();
        } catch (e) {
          // The session is still good for SDKs through `proxy azure`: say so rather than fail.
          print([...done, ``, `Note: ${(e as Error).message}.`, `az login was skipped; Azure SDKs work through: azgate proxy azure`].join("\n"));
          return;
        }
        const flag = usesMsal(await azVersion(az)) ? "--resource-id" : "--username";
        const opened = await openAzure(app.name);
        try {
          const result = await runAz(az, ["login", "--identity", flag, identity, ...(argv.debug ? ["--debug"] : [])], opened.env);
          if (result.code !== 0) throw new AzgateError("login_failed", `failed to automatically login with az login using identity "${identity}"; run with --debug for details`);
        } finally {
          await opened.proxy.close();
        }
        print([...done, `Example Azure CLI command: azgate az group list`].join("\n"));
      }),
    )
    .command<{ app?: string }>(
      "logout [app]",
      "Remove app credentials (all apps when none is named)",
      (b) => b.positional("app", { type: "string" }),
      run(async (argv) => {
        const { profile } = await session();
        const apps = argv.app ? [argv.app] : (await listAppSessions(profile)).map((s) => s.app);
        const removed: string[] = [];
        for (const app of apps) if (await removeAppSession(profile, app)) removed.push(app);
        print(removed.length ? `Logged out of ${removed.map((a) => `"${a}"`).join(", ")}.` : "Not logged into any app.");
      }),
    );
}

/** `azgate az ARGS...`: everything after `az` goes to az untouched (`--app NAME` first picks the app). */
export async function azPassthrough(args: string[]): Promise<void> {
  let app: string | undefined;
  if (args[0] === "--app" && args[1]) {
    app = args[1];
    args = args.slice(2);
  }
  await run(async () => {
    const az = findAz();
    const opened = await openAzure(app);
    try {
      const result = await runAz(az, args, opened.env);
      process.exitCode = result.code;
    } finally {
      await opened.proxy.close();
    }
  })(undefined);
}

type Shell = "unix" | "powershell" | "command-prompt" | "text";

/** Quotes for POSIX shells only when needed, so the usual case stays copy-pasteable. */
const shQuote = (v: string) => (/^[A-Za-z0-9_@%+=:,./-]*$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

export function exportLines(env: Record<string, string>, format: Shell): string {
  return Object.entries(env)
    .map(([k, v]) =>
      format === "unix" ? `export ${k}=${shQuote(v)}`
      : format === "powershell" ? `$Env:${k}="${v.replace(/[`"$]/g, "`$&")}"`
      : format === "command-prompt" ? `set ${k}=${v}`
      : `${k}=${v}`,
    )
    .join("\n");
}

export function proxyCommands(y: Argv) {
  return y.command("proxy", "Local proxies for tools other than az", (p) =>
    p
      .command<{ app?: string; port?: number; format?: Shell }>(
        ["azure", "az"],
        "Start the local Azure proxy and print the environment for another shell",
        (b) =>
          b
            .option("app", { type: "string", describe: "App, when logged into several" })
            .option("port", { alias: "p", type: "number", describe: "Port of the forward proxy (random when omitted)" })
            .option("format", { alias: "f", choices: ["unix", "powershell", "command-prompt", "text"] as const, describe: "Export syntax (default: powershell on Windows, unix elsewhere)" }),
        run(async (argv) => {
          const opened = await openAzure(argv.app, argv.port ?? 0);
          const format = argv.format ?? (process.platform === "win32" ? "powershell" : "unix");
          print(
            [
              `Started Azure proxy on http://127.0.0.1:${opened.proxy.port}.`,
              ...(argv.port ? [] : [`To avoid port randomization, you can choose the listening port using the --port flag.`]),
              ``,
              `Use the following environment variables with Azure CLI or Azure SDKs (app "${opened.app}", identity ${opened.identity}):`,
              exportLines(opened.env, format),
            ].join("\n"),
          );
          const expiry = setTimeout(
            () => process.stderr.write(`The app session for "${opened.app}" expired at ${opened.expires.toISOString()}; requests are refused. Run azgate apps login ${opened.app}, then start azgate proxy azure again.\n`),
            Math.min(Math.max(opened.expires.getTime() - Date.now(), 0), 2 ** 31 - 1),
          );
          await untilSignalled();
          clearTimeout(expiry);
          await opened.proxy.close();
        }),
      )
      .demandCommand(1),
  );
}
