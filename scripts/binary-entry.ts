// Entry point of the single binary: the same main() as cmd/azgate.ts, without
// top-level await (the bundle is CommonJS, which Node's SEA requires).
import { hideBin } from "yargs/helpers";
import { main } from "../src/cli/main.ts";

main(hideBin(process.argv)).catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
