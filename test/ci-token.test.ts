/**
 * Where a bot command gets its CI's token (src/client/ci-token.ts), against
 * the emulator's runner token services: GitHub's GET with the audience
 * asked for, Azure DevOps' POST (the pipeline's token, or a service
 * connection's), GitLab's id_tokens variable, a projected service-account
 * file; which CI this is; and the clear errors when a job lacks what its
 * CI needs (no id-token permission, SYSTEM_ACCESSTOKEN not mapped, a
 * refused bearer, a token too long).
 */
import { describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { decodeJwt } from "jose";
import { detectJoinMethod, fetchCiToken, tokenVariables } from "../src/client/ci-token.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { tempDir } from "./helpers/azgate.ts";

const fx = useEmulator();
const ca = () => [readFileSync(fx.emu.caFile, "utf8")];

describe("the CI's own token, where each CI hands it to a step", () => {
  it("GitHub Actions: asked for with the audience azgate needs, bearer the job's request token", async () => {
    const env = fx.emu.ci.runner.githubJob({ repository: "acme/infra" });
    const claims = decodeJwt(await fetchCiToken({ method: "github", audience: "acme-prod", env, caPems: ca() }));
    expect(claims).toMatchObject({ iss: "https://token.actions.githubusercontent.com", aud: "acme-prod", repository: "acme/infra" });
    await expect(fetchCiToken({ method: "github", audience: "a", env: { ...env, ACTIONS_ID_TOKEN_REQUEST_TOKEN: "not-the-job's" }, caPems: ca() })).rejects.toMatchObject({ code: "token_invalid", message: expect.stringMatching(/refused the token request \(HTTP 401\)/) });
    await expect(fetchCiToken({ method: "github", audience: "a", env: { GITHUB_ACTIONS: "true" } })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/ACTIONS_ID_TOKEN_REQUEST_URL is not set: give the job `permissions: id-token: write`/) });
  });

  it("Azure DevOps: the pipeline's token, or a service connection's, by POST with SYSTEM_ACCESSTOKEN", async () => {
    const env = fx.emu.ci.runner.azureDevopsJob({ project: "infra", pipeline: "deploy" });
    expect(decodeJwt(await fetchCiToken({ method: "azure_devops", audience: "ignored", env, caPems: ca() })).sub).toBe("p://acme/infra/deploy");
    expect(decodeJwt(await fetchCiToken({ method: "azure_devops", audience: "ignored", env, serviceConnection: "azgate-prod", caPems: ca() })).sub).toBe("sc://acme/infra/azgate-prod");
    const { SYSTEM_ACCESSTOKEN: _, ...unmapped } = env;
    await expect(fetchCiToken({ method: "azure_devops", audience: "a", env: unmapped, caPems: ca() })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/SYSTEM_ACCESSTOKEN is not set: map it into the step/) });
  });

  it("GitLab: the job's id_tokens variable (AZGATE_ID_TOKEN unless named), dropped from the command's environment", async () => {
    const token = await fx.emu.ci.runner.gitlabToken("acme-prod");
    expect(await fetchCiToken({ method: "gitlab", audience: "acme-prod", env: { AZGATE_ID_TOKEN: token } })).toBe(token);
    expect(await fetchCiToken({ method: "gitlab", audience: "acme-prod", env: { AZGATE: ` ${token}\n` }, idTokenEnv: "AZGATE" })).toBe(token);
    expect(tokenVariables({ method: "gitlab", idTokenEnv: "AZGATE" })).toEqual(["AZGATE"]);
    await expect(fetchCiToken({ method: "gitlab", audience: "acme-prod", env: {} })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/id_tokens: \{ AZGATE_ID_TOKEN: \{ aud: acme-prod \} \}/) });
  });

  it("Kubernetes: a projected service-account token file; a missing one says how to project it", async () => {
    const file = path.join(tempDir("azgate-sa-"), "token");
    writeFileSync(file, "header.payload.signature\n");
    expect(await fetchCiToken({ method: "kubernetes", audience: "acme-prod", env: {}, idTokenFile: file })).toBe("header.payload.signature");
    await expect(fetchCiToken({ method: "kubernetes", audience: "acme-prod", env: {}, idTokenFile: file + ".missing" })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/ENOENT.*audience acme-prod/) });
  });

  it("a token longer than 16 KiB or empty is refused before it is sent; a token file is read only that far", async () => {
    const big = path.join(tempDir("azgate-sa-"), "token");
    writeFileSync(big, "x".repeat(1024 * 1024));
    await expect(fetchCiToken({ method: "kubernetes", audience: "a", env: {}, idTokenFile: big })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/longer than 16384/) });
    await expect(fetchCiToken({ method: "gitlab", audience: "a", env: { AZGATE_ID_TOKEN: "x".repeat(16 * 1024 + 1) } })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/longer than 16384/) });
    await expect(fetchCiToken({ method: "gitlab", audience: "a", env: { AZGATE_ID_TOKEN: "  " } })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringMatching(/empty/) });
  });

  it("which CI this is, from what each sets in every job", () => {
    expect(detectJoinMethod({ GITHUB_ACTIONS: "true" })).toBe("github");
    expect(detectJoinMethod({ TF_BUILD: "True" })).toBe("azure_devops");
    expect(detectJoinMethod({ GITLAB_CI: "true" })).toBe("gitlab");
    expect(detectJoinMethod({ KUBERNETES_SERVICE_HOST: "10.0.0.1" })).toBe("kubernetes");
    expect(detectJoinMethod({})).toBeNull();
  });
});
