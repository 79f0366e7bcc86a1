/**
 * Writes the documentation generated from the registries (`npm run docs`):
 * docs/audit-events.md (audit/events.ts), docs/reference/errors.md
 * (errors/index.ts), docs/reference/configuration.md (config/schema.ts and
 * config/load.ts) and docs/reference/cli.md (the commands, cli/main.ts).
 * test/audit-events.test.ts and test/docs-reference.test.ts fail when one is stale.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { auditEventsMarkdown } from "../src/audit/events.ts";
import { errorCodesMarkdown } from "../src/errors/reference.ts";
import { configurationMarkdown } from "../src/config/reference.ts";
import { cliReferenceMarkdown } from "../src/cli/reference.ts";

const pages: [string, () => string | Promise<string>][] = [
  ["docs/audit-events.md", auditEventsMarkdown],
  ["docs/reference/errors.md", errorCodesMarkdown],
  ["docs/reference/configuration.md", configurationMarkdown],
  ["docs/reference/cli.md", cliReferenceMarkdown],
];
mkdirSync("docs/reference", { recursive: true });
for (const [file, make] of pages) {
  writeFileSync(file, await make());
  console.log(`wrote ${file}`);
}
