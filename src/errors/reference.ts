/**
 * docs/reference/errors.md, generated from the registry (index.ts: each
 * code's status and meaning). `npm run docs` writes the page;
 * test/docs-reference.test.ts fails when it is stale.
 */
import { ERROR_MEANING, ERROR_STATUS, type ErrorCode } from "./index.ts";

export function errorCodesMarkdown(): string {
  const rows = (Object.keys(ERROR_STATUS) as ErrorCode[]).map((code) => `| \`${code}\` | ${ERROR_STATUS[code]} | ${ERROR_MEANING[code].replace(/\|/g, "\\|")} |`);
  return [
    "# Error codes",
    "",
    "Every error code azgate answers with, generated from the registry in `src/errors/index.ts` by `npm run docs`;",
    "`test/docs-reference.test.ts` fails when this page is stale. A code never changes its meaning once released:",
    "scripts and tests may match on it.",
    "",
    "The CLI prints `ERROR: <message>`; the API answers `{\"error\":{\"code\",\"message\"}}` with the code's HTTP status.",
    "On the Azure request path a refusal comes in ARM's error shape, so az prints it; which hop answers each of",
    "those codes is in the [tunnel protocol](../tunnel-protocol.md#6-http-streams).",
    "",
    "| code | HTTP status | meaning |",
    "|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
