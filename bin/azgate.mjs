#!/usr/bin/env node
// Runs the TypeScript sources on Node through tsx (the single binary bundles them instead).
import { register } from "tsx/esm/api";
register();
await import("../cmd/azgate.ts");
