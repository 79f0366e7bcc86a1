import { afterAll, beforeAll } from "vitest";
import path from "node:path";
import { startEmulator, type RunningEmulator } from "../../src/emulator/server.ts";
import { tempDir } from "./azgate.ts";

export const AGENT_SA = { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" };

export interface EmulatorFixture {
  emu: RunningEmulator;
  dir: string;
  /** The agent's projected service-account token, when asked for. */
  tokenFile: string;
}

/** Starts an emulator for the calling test file (and a projected token), and stops it after. */
export function useEmulator(opts: { armPageSize?: number; projectToken?: boolean; worldFile?: string } = {}): EmulatorFixture {
  const fx = { dir: tempDir("azgate-emu-") } as EmulatorFixture;
  let stopProjection: (() => void) | undefined;
  beforeAll(async () => {
    fx.emu = await startEmulator({ dir: fx.dir, armPageSize: opts.armPageSize, worldFile: opts.worldFile });
    fx.tokenFile = path.join(fx.dir, "sa-token");
    if (opts.projectToken) stopProjection = (await fx.emu.issuer.project(fx.tokenFile, AGENT_SA)).stop;
  });
  afterAll(async () => {
    stopProjection?.();
    await fx.emu?.close();
  });
  return fx;
}

/** What a process needs to reach the emulator by the real host names and trust it (Node and Python). */
export function clientEnv(fx: EmulatorFixture, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: fx.dir,
    HTTPS_PROXY: `http://127.0.0.1:${fx.emu.proxyPort}`,
    NODE_EXTRA_CA_CERTS: fx.emu.caFile,
    REQUESTS_CA_BUNDLE: fx.emu.caFile,
    AZURE_TENANT_ID: fx.emu.world.tenant_id,
    ...extra,
  };
}

/** The access tokens the emulator issued that appear in `haystack`, whole or by their signature alone. */
export function findIssuedTokens(fx: EmulatorFixture, haystack: string | Buffer): string[] {
  const text = typeof haystack === "string" ? haystack : haystack.toString("latin1");
  return [...fx.emu.issuedTokens].filter((t) => text.includes(t) || text.includes(t.split(".")[2]));
}
