#!/usr/bin/env -S deno run -A
// The one entry point of every mode: proxy, agent, client, admin.
import { hideBin } from "yargs/helpers";
import { main } from "../src/cli/main.ts";

await main(hideBin(process.argv));
