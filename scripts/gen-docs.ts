/** Writes the documentation generated from the registries: docs/audit-events.md (audit/events.ts). */
import { writeFileSync } from "node:fs";
import { auditEventsMarkdown } from "../src/audit/events.ts";

writeFileSync("docs/audit-events.md", auditEventsMarkdown());
console.log("wrote docs/audit-events.md");
