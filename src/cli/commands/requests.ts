/**
 * `azgate request ...`: ask for an Azure identity for a while, review others'
 * requests, end access early. In Teleport's words (`tsh request`).
 */
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import type { ApiClient } from "../../api/client.ts";
import type { AccessRequest } from "../../resources/access-request.ts";
import { identityName } from "../../azure/resource-id.ts";
import { AzgateError } from "../../errors/index.ts";
import { formatDuration } from "../../util/duration.ts";
import { profileClient } from "../connect.ts";
import { fields, print, printErr, structured, table, type Format } from "../output.ts";
import { run, subcommandNeeded } from "../run.ts";

/** How often `request create` asks whether its request was reviewed. */
const POLL_MS = 1_000;

function describe(r: AccessRequest): string {
  const s = r.spec;
  return fields([
    ["Request ID", r.metadata.name],
    ["Username", s.user],
    ["App", s.app],
    ["Azure identity", `${identityName(s.azure_identity)} (${s.azure_identity})`],
    ["Duration", formatDuration(s.duration_ms)],
    ["Reason", s.reason || "-"],
    ...(s.ticket ? [["Ticket", s.ticket] as [string, string]] : []),
    ["Reviewers", s.suggested_reviewers.join(", ") || "-"],
    ["Reviews", s.reviews.map((v) => `${v.author} ${v.state}${v.reason ? ` (${v.reason})` : ""}`).join("; ") || "-"],
    ...(s.grant ? [["Access", `from ${s.grant.not_before} until ${s.grant.not_after}`] as [string, string]] : []),
    ["Status", s.state],
  ]);
}

const get = (client: ApiClient, id: string) => client.call<AccessRequest>("GET", `/v1/requests/${encodeURIComponent(id)}`);

/** Runs a command's body with an API client: the login profile's, or (admin) the admin connection's. */
export type WithClient = <A>(fn: (client: ApiClient, argv: A) => Promise<void>) => (argv: A) => Promise<void>;
const asUser: WithClient = (fn) => run(async (argv) => fn(await profileClient(), argv));

/** `azgate admin [--data-dir DIR] request ...`: tctl request's verbs, for administrators (any request but their own). */
export function adminRequestCommands<T>(r: Argv<T>, withClient: WithClient) {
  return r
    .command<{ format: Format }>(
      "ls",
      "List every access request",
      (b) => b.option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const }),
      withClient<{ format: Format }>((client, argv) => listRequests(client, "", argv.format)),
    )
    .command(...review("approve", "APPROVED", withClient))
    .command(...review("deny", "DENIED", withClient))
    .command<{ id: string; reason?: string }>(
      "revoke <id>",
      "End an approved request's access now",
      (b) => b.positional("id", { type: "string", demandOption: true }).option("reason", { type: "string" }),
      withClient<{ id: string; reason?: string }>((client, argv) => revoke(client, argv.id, argv.reason)),
    );
}

async function listRequests(client: ApiClient, filter: string, format: Format) {
  const { items } = await client.call<{ items: AccessRequest[] }>("GET", `/v1/requests${filter ? `?filter=${filter}` : ""}`);
  if (format !== "text") return print(await structured(items, format));
  if (items.length === 0) return print("No access requests.");
  print(table(["ID", "User", "Identity", "Duration", "Created", "Status", "Reason"], items.map((x) => [x.metadata.name, x.spec.user, identityName(x.spec.azure_identity), formatDuration(x.spec.duration_ms), x.spec.created, x.spec.state, x.spec.reason])));
}

async function revoke(client: ApiClient, id: string, reason: string | undefined) {
  const req = await client.call<AccessRequest>("POST", `/v1/requests/${encodeURIComponent(id)}/revoke`, { reason });
  print(`Request ${req.metadata.name} revoked. Status: ${req.spec.state}`);
}

/** `withClient` is how each verb gets its API client: the login profile's (the default), or a test's. */
export function requestCommands(y: Argv, withClient: WithClient = asUser) {
  return y.command("request", DESCRIBE.request, (r) =>
    r
      .command<{ app: string; "azure-identity": string; for?: string; reason?: string; ticket?: string; start?: string; "request-ttl"?: string; reviewers?: string; nowait?: boolean }>(
        "create",
        "Request an Azure identity for a while; waits for the review unless --nowait",
        (b) =>
          b
            .option("app", { type: "string", default: "azure-cli", describe: "The app" })
            .option("azure-identity", { type: "string", demandOption: true, describe: "The identity (name or resource ID)" })
            .option("for", { type: "string", describe: "How long (30m, 1h; default: the longest your roles allow)" })
            .option("reason", { type: "string", describe: "Why (required when a role says so)" })
            .option("ticket", { type: "string", describe: "A change or incident ticket (required when a role says so)" })
            .option("start", { type: "string", describe: "When the access starts (an RFC 3339 time; default: at approval)" })
            .option("request-ttl", { type: "string", describe: "How long it may wait for reviews before it expires (5s to 168h; default: 1h after the start)" })
            .option("reviewers", { type: "string", describe: "Users to ask to review, comma-separated (added to the roles' suggested reviewers; notified by mail when they have an e-mail)" })
            .option("nowait", { type: "boolean", describe: "Print the request and return without waiting" }),
        run(async (argv) => {
          const client = await profileClient();
          let req = await client.call<AccessRequest>("POST", "/v1/requests", { app: argv.app, azure_identity: argv["azure-identity"], duration: argv.for, reason: argv.reason, ticket: argv.ticket, start: argv.start, request_ttl: argv["request-ttl"], reviewers: argv.reviewers ? argv.reviewers.split(",").map((n) => n.trim()).filter(Boolean) : undefined });
          print(`Creating request...\n${describe(req)}\n`);
          if (argv.nowait) return print(`hint: azgate request show ${req.metadata.name} shows its state; once approved, your requests go through without a new login`);
          printErr("Waiting for request approval...");
          while (req.spec.state === "PENDING") {
            await new Promise((r) => setTimeout(r, POLL_MS));
            req = await get(client, req.metadata.name);
          }
          if (req.spec.state !== "APPROVED") {
            process.exitCode = 1;
            return printErr(`Request ${req.metadata.name} was ${req.spec.state.toLowerCase()}${req.spec.resolution?.reason ? `: ${req.spec.resolution.reason}` : ""}.`);
          }
          print(`Approval received: your access to ${identityName(req.spec.azure_identity)} is in force until ${req.spec.grant?.not_after}. It applies to your next request; no new login is needed.`);
        }),
      )
      .command<{ mine?: boolean; reviewable?: boolean; format: Format }>(
        "ls",
        "List requests: yours, those you may review, or (with --mine/--reviewable) one kind",
        (b) => b.option("mine", { type: "boolean" }).option("reviewable", { type: "boolean" }).option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const }),
        run(async (argv) => listRequests(await profileClient(), argv.mine ? "mine" : argv.reviewable ? "reviewable" : "", argv.format)),
      )
      .command<{ id: string; format: Format }>(
        "show <id>",
        "Show one request",
        (b) => b.positional("id", { type: "string", demandOption: true }).option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const }),
        run(async (argv) => {
          const req = await get(await profileClient(), argv.id);
          print(argv.format === "text" ? describe(req) : await structured(req, argv.format));
        }),
      )
      .command(...review("approve", "APPROVED", withClient))
      .command(...review("deny", "DENIED", withClient))
      .command<{ id: string }>(
        "cancel <id>",
        "Cancel your pending request",
        (b) => b.positional("id", { type: "string", demandOption: true }),
        withClient<{ id: string }>(async (client, argv) => {
          const req = await client.call<AccessRequest>("POST", `/v1/requests/${encodeURIComponent(argv.id)}/cancel`, {});
          print(`Request ${req.metadata.name} cancelled. Status: ${req.spec.state}`);
        }),
      )
      .command<{ id: string; reason?: string }>(
        "revoke <id>",
        "End an approved request's access now (the next request is refused)",
        (b) => b.positional("id", { type: "string", demandOption: true }).option("reason", { type: "string" }),
        withClient<{ id: string; reason?: string }>((client, argv) => revoke(client, argv.id, argv.reason)),
      )
      .demandCommand(...subcommandNeeded("request")),
  );
}

function review(verb: "approve" | "deny", state: "APPROVED" | "DENIED", withClient: WithClient) {
  return [
    `${verb} <id>`,
    `${verb === "approve" ? "Approve" : "Deny"} a request you may review (never your own)`,
    (b: Argv) =>
      b
        .positional("id", { type: "string", demandOption: true })
        .option("reason", { type: "string", describe: "Why (shown to the requester)" })
        .option("otp", { type: "string", describe: "Your authenticator code (when a role of yours sets review_mfa)" }),
    withClient<{ id: string; reason?: string; otp?: string }>(async (client, argv) => {
      if (!argv.id) throw new AzgateError("bad_parameter", "give the request ID");
      const path = `/v1/requests/${encodeURIComponent(argv.id)}/review`;
      const body = { state, reason: argv.reason, ...(argv.otp ? { otp: argv.otp } : {}) };
      const req = await client.call<AccessRequest>("POST", path, body).catch(async (e) => {
        // review_mfa and a passkey: the check in the browser, bound to this request, then the review with it.
        if (!(e instanceof AzgateError) || e.code !== "mfa_required" || argv.otp || !/asks for a fresh check/.test(e.message)) throw e;
        printErr(e.message);
        const { browserCheck } = await import("../../client/browser-mfa.ts");
        const mfa = await browserCheck(client, { say: (line) => printErr(line) }, { request: argv.id });
        return client.call<AccessRequest>("POST", path, { ...body, mfa });
      });
      print(`Successfully submitted review. Request state: ${req.spec.state}`);
    }),
  ] as const;
}
