/**
 * What a client says about itself, and what Azure's answer says, as the
 * audit log records them (pure): az's command and parameter NAMES, the
 * client's request ID, the User-Agent's product tokens, the invocation
 * azgate's own `az`/`exec` gave the run; ARM's correlation ID and a
 * long-running operation's URL.
 *
 * All of it is the client's word (or Azure's), never a basis for a
 * decision: each value is kept only when it has the shape its sender gives
 * it, so nothing else (an argument's value, a token pasted into a header)
 * can ride into the log. az 2.45 sends `CommandName` and `ParameterSetName`
 * from its parsed command and `safe_params` (names only: client_factory.py);
 * a ParameterSetName token that is not a flag name is dropped.
 */
import { headerValue, type HeaderList } from "../tunnel/headers.ts";
import { redactQuery } from "./redact.ts";

export interface ClientInfo {
  /** az's CommandName: `group delete`. */
  command?: string;
  /** az's ParameterSetName: flag names only, `--name --yes`. */
  parameters?: string;
  /** x-ms-client-request-id: az's is one per command; an SDK's, one per request. */
  client_request_id?: string;
  /** An x-ms-correlation-request-id the client chose (azgate sends its own request ID to Azure in its place). */
  correlation_request_id?: string;
  /** The User-Agent's product tokens (`AZURECLI/2.45.0 azsdk-python-azure-mgmt-resource/21.1.0`), comments dropped. */
  user_agent?: string;
  /** The run of `azgate az` or `azgate exec` that sent it (the local proxy stamps it; docs/tunnel-protocol.md). */
  invocation_id?: string;
  /** The program `azgate exec` ran (its file name only, never its arguments). */
  program?: string;
}

/** What the local proxy of one `azgate az`/`exec` run adds to each request's head. */
export interface Invocation {
  id: string;
  program?: string;
}

const COMMAND = /^[a-z0-9][a-z0-9 -]{0,127}(;completer-request)?$/i;
const FLAG = /^--?[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PRODUCT = /^[A-Za-z0-9._+-]{1,64}(\/[A-Za-z0-9._+-]{1,64})?$/;
const PROGRAM = /^[A-Za-z0-9._+-]{1,64}$/;
/** The product token azgate puts in AZURE_HTTP_USER_AGENT for a run (every Azure SDK appends that variable). */
export const INVOCATION_PRODUCT = "azgate-invocation";
const MAX_FLAGS = 32;
const MAX_PRODUCTS = 16;

const first = (headers: HeaderList, name: string) => headerValue(headers, name)[0]?.trim();

/** User-Agent product tokens: `(...)` comments dropped, tokens of another shape dropped. */
export function productTokens(userAgent: string): string[] {
  const out: string[] = [];
  let depth = 0;
  for (const word of userAgent.slice(0, 2048).split(/(\(|\)|\s+)/)) {
    if (word === "(") depth++;
    else if (word === ")") depth = Math.max(0, depth - 1);
    else if (depth === 0 && PRODUCT.test(word) && out.length < MAX_PRODUCTS) out.push(word);
  }
  return out;
}

export function readClientInfo(headers: HeaderList, invocation?: Invocation): ClientInfo {
  const info: ClientInfo = {};
  const command = first(headers, "commandname");
  if (command && COMMAND.test(command)) info.command = command;
  const flags = (first(headers, "parametersetname") ?? "").split(/\s+/).filter((t) => FLAG.test(t)).slice(0, MAX_FLAGS);
  if (flags.length) info.parameters = flags.join(" ");
  const requestId = first(headers, "x-ms-client-request-id");
  if (requestId && REQUEST_ID.test(requestId)) info.client_request_id = requestId;
  const correlation = first(headers, "x-ms-correlation-request-id");
  if (correlation && REQUEST_ID.test(correlation)) info.correlation_request_id = correlation;
  const products = productTokens(first(headers, "user-agent") ?? "");
  if (products.length) info.user_agent = products.join(" ");
  // The local proxy's stamp, else the one the SDK carried in its User-Agent (AZURE_HTTP_USER_AGENT).
  const fromAgent = products.find((p) => p.startsWith(`${INVOCATION_PRODUCT}/`))?.slice(INVOCATION_PRODUCT.length + 1);
  const id = invocation?.id ?? fromAgent;
  if (id && UUID.test(id)) info.invocation_id = id.toLowerCase();
  if (invocation?.program && PROGRAM.test(invocation.program)) info.program = invocation.program;
  return info;
}

/** Azure's side of the join: ARM's correlation ID (the Activity Log's `correlationId`) and, for a long-running operation, where to poll it. */
export interface AzureAnswer {
  correlation_id?: string;
  operation_url?: string;
}

export function readAzureAnswer(status: number, headers: HeaderList): AzureAnswer {
  const answer: AzureAnswer = {};
  const correlation = first(headers, "x-ms-correlation-request-id");
  if (correlation && REQUEST_ID.test(correlation)) answer.correlation_id = correlation;
  if (status === 201 || status === 202) {
    const url = first(headers, "azure-asyncoperation") ?? first(headers, "location");
    if (url && url.length <= 2048 && url.startsWith("https://")) {
      const q = url.indexOf("?");
      // A poll URL may carry a signature in its query (Storage, some RPs): redacted as any audited query.
      answer.operation_url = q < 0 ? url : `${url.slice(0, q)}?${redactQuery(url.slice(q + 1))}`;
    }
  }
  return answer;
}

/**
 * The command a request belongs to, as the command view groups them: az's
 * own command (its client request ID is one per command), else the run of
 * `azgate az`/`exec` it came from, else the request alone. Only ever
 * compared within one session: another user's IDs never join a command.
 */
export function commandId(info: ClientInfo, requestId: string): string {
  if (info.command && info.client_request_id) return `az:${info.client_request_id}`;
  if (info.invocation_id) return `run:${info.invocation_id}`;
  return `req:${requestId}`;
}
