import { z } from "zod";
import { parseDuration } from "../util/duration.ts";
import { isCidr } from "../net/address-policy.ts";
import { CLOUD_NAMES } from "../azure/clouds.ts";
import { LOG_LEVELS } from "../util/log.ts";

// A title names a type for the configuration reference (config/reference.ts), where the JSON Schema type would only say "string".
const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/, "must be host:port, for example 0.0.0.0:3080").meta({ title: "host:port" });
const addr = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?$/, "must be host or host:port, for example proxy.example.com:3080").meta({ title: "host or host:port" });
const duration = z.string().refine((v) => {
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}, "must be a duration such as 30m or 1h").meta({ title: "duration" });

/** An app's name, as agents announce it (and as access requests must name one). */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

// Each key's .describe() is its line in docs/reference/configuration.md (config/reference.ts, npm run docs).
export const agentAppSchema = z.strictObject({
  name: z.string().regex(APP_NAME, "must be lowercase letters, digits and '-'").describe("The app's name, as users and access requests name it: lowercase letters, digits and '-'."),
  cloud: z.enum(CLOUD_NAMES, { message: `must be one of ${CLOUD_NAMES.join(", ")}` }).default("Azure").describe("The Azure cloud the app's identities live in (azure/clouds.ts); all apps of one agent name the same cloud."),
  uri: z.string().default("cloud://Azure").describe("The app's URI, as Teleport's app definitions carry it."),
  description: z.string().optional().describe("What `apps ls` shows for the app."),
  labels: z.record(z.string(), z.string()).default({}).describe("The app's labels, which roles' app_labels match."),
});

const exportName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lowercase letters, digits and '-'").optional().describe("The target's name (its cursor is kept under it; default: its type). Renamed, it starts again from the log's beginning.");

/** One audit export target (proxy/audit-export). */
const auditExportTarget = z.discriminatedUnion(
  "type",
  [
    z.strictObject({
      type: z.literal("webhook").describe("webhook: each batch POSTed as JSON ({cluster, events}), signed as Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)."),
      name: exportName,
      url: z.string().regex(/^https?:\/\/\S+$/, "must be an http:// or https:// URL").describe("The receiver's URL (https:// unless it is on the same host or network)."),
      secret_file: z.string().min(1).describe("A file holding the signing secret (whsec_ and base64, as the notification webhooks')."),
      ca_file: z.string().min(1).optional().describe("CA certificates (PEM) the receiver's certificate is checked against, besides the system's."),
    }),
    z.strictObject({ type: z.literal("stdout").describe("stdout: one JSON line per event on the proxy's standard output, for a cluster's log collector."), name: exportName }),
    z.strictObject({
      type: z.literal("syslog").describe("syslog: RFC 5424 messages over TCP with TLS (RFC 5425 framing), facility log audit, MSGID the event's code, the event as JSON."),
      name: exportName,
      address: hostPort.describe("The receiver's host:port (6514 is syslog over TLS's port)."),
      ca_file: z.string().min(1).optional().describe("CA certificates (PEM) the receiver's certificate is checked against, besides the system's."),
      cert_file: z.string().min(1).optional().describe("A client certificate (PEM) for a receiver that asks for one."),
      key_file: z.string().min(1).optional().describe("The client certificate's key (PEM)."),
      app_name: z.string().min(1).max(48).optional().describe("The APP-NAME field (default azgate)."),
      hostname: z.string().min(1).max(255).optional().describe("The HOSTNAME field (default: the machine's name)."),
    }).refine((t) => !t.cert_file === !t.key_file, "cert_file and key_file go together"),
  ],
  { message: 'type must be "webhook", "stdout" or "syslog"' },
);
export type AuditExportTarget = z.infer<typeof auditExportTarget>;

/** true or false; from the environment, "true" or "false". */
const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], { message: "must be true or false" });

const pinSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 hex digits>").meta({ title: "sha256:<64 hex digits>" });

export const configSchema = z.strictObject({
  version: z.literal("v1", { message: 'must be "v1"' }).default("v1").describe("The configuration format: v1."),
  cluster_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$/, "must be letters, digits, '.' and '-'").optional().describe("The cluster's name (letters, digits, '.' and '-'), fixed at the proxy's first start."),
  data_dir: z.string().min(1).optional().describe("Where state is kept: the backend's files, the audit log, the agent's identity (default: /var/lib/azgate as root, else ~/.local/share/azgate)."),
  proxy: z
    .strictObject({
      listen: hostPort.default("0.0.0.0:3080").describe("The address (host:port) the proxy listens on: the API, the tunnels and the web UI, on one port."),
      public_addr: addr.optional().describe("The address clients and agents reach the proxy by (host or host:port); its certificate names it."),
      advertise_addr: hostPort.optional().describe("This replica's own address, advertised to agents so they hold a tunnel to every replica (in Kubernetes, the pod IP)."),
      diag_addr: hostPort.optional().describe("Plain-HTTP diagnostics on this address: /metrics (Prometheus), /healthz, /readyz."),
      tls: z.strictObject({ cert_file: z.string().min(1).describe("The certificate (PEM)."), key_file: z.string().min(1).describe("Its key (PEM).") }).optional().describe("An operator's certificate for the proxy's TLS, instead of one from the cluster's host CA."),
      server_names: z.array(z.string().min(1).max(253)).max(32).optional().describe("More names (DNS or IP, at most 32) for the certificate the proxy issues itself, e.g. the Service name in-cluster agents dial."),
      trusted_proxies: z.array(z.string().refine(isCidr, "must be an IP address or a CIDR range (10.0.0.0/8, fd00::/8)")).max(64).optional().describe("Fronts (an Ingress controller's, a load balancer's addresses, as IP addresses or CIDRs) trusted to say who the caller is in X-Forwarded-For: audit events and the per-address login limit use it."),
    })
    .default({ listen: "0.0.0.0:3080" })
    .describe("The proxy (start --mode proxy)."),
  auth: z
    .strictObject({
      second_factor: z
        .enum(["otp", "webauthn", "on", "optional", "off"], { message: 'must be "otp", "webauthn", "on", "optional" or "off"' })
        .default("otp")
        .describe("The second factor of password logins, as Teleport names them: otp (a TOTP code), webauthn (a passkey or security key), on (either, required), optional (the user's device if they registered one), off."),
      require_session_mfa: z.boolean().default(false).describe("Every app session needs a fresh passkey check, as the role option require_session_mfa asks for its identities."),
      invite_ttl: duration.default("1h").describe("How long an invite is good for (a duration: 30m, 1h)."),
      host_cert_ttl: duration.default("24h").describe("How long an agent's certificate lives; the agent renews it at two thirds of its life."),
      sso_login_timeout: duration.default("3m").describe("How long an SSO login may take, from login --auth to the certificate's pickup."),
      lockout: z
        .strictObject({
          max_attempts: z.number().int().min(1).max(100).default(5).describe("Failed password logins (1-100) that lock a user's password logins."),
          window: duration.default("30m").describe("The window the failures are counted in."),
          lock_duration: duration.default("30m").describe("How long password logins stay locked."),
        })
        .default({ max_attempts: 5, window: "30m", lock_duration: "30m" })
        .describe("The failed-login lockout: it locks a user's password logins, not their sessions."),
    })
    .default({ second_factor: "otp", require_session_mfa: false, invite_ttl: "1h", host_cert_ttl: "24h", sso_login_timeout: "3m", lockout: { max_attempts: 5, window: "30m", lock_duration: "30m" } })
    .describe("Sign-in: users, invites, SSO, agents' certificates."),
  bots: z
    .strictObject({
      cert_ttl: duration
        .refine((v) => parseDuration(v) <= 3_600_000, "bots' certificates live at most 1h")
        .default("20m")
        .describe("How long a bot's certificate lives (at most 1h); the running bot command renews it in memory."),
      audience: z.string().min(1).max(256).optional().describe("The audience a CI token must name to join (default: the cluster's name); a join token's spec.<method>.audience overrides it."),
      issuer_ca_file: z.string().min(1).optional().describe("More CAs (a PEM file) to trust for CI issuers, e.g. a GitHub Enterprise Server or a self-managed GitLab behind a company CA; the web PKI is trusted anyway."),
      issuer_connect_to: z
        .strictObject({ address: hostPort.describe("Where every issuer connection goes (host:port)."), ca_file: z.string().min(1).describe("The CA (PEM) of that address.") })
        .optional()
        .describe("Like curl's --connect-to: every connection to a CI issuer goes to this address (the emulator), host names, SNI and Host kept. For the demo and tests."),
    })
    .default({ cert_ttl: "20m" })
    .describe("Bots: CI runs that join with their CI's own OIDC token (docs/bots.md)."),
  notifications: z
    .strictObject({
      allow_private_addresses: flag
        .default(false)
        .describe("Let notification targets reach loopback, link-local (IMDS), private and other special addresses (net/address-policy.ts), for a receiver inside the network; refused by default."),
    })
    .default({ allow_private_addresses: false })
    .describe("Access-request notifications (the targets themselves are resources: notification_target)."),
  audit: z
    .strictObject({
      export: z
        .array(auditExportTarget)
        .max(8)
        .default([])
        .refine((ts) => new Set(ts.map((t) => t.name ?? t.type)).size === ts.length, "two targets have the same name: give each a name of its own")
        .describe("Where every audit event is sent as well, at least once and in order, resuming after a restart (docs/operations.md, \"Audit export\"): webhook, stdout, syslog."),
      retention: duration.optional().describe("How long audit events are kept (a duration: 90d); older ones are deleted (the file sink by whole days, PostgreSQL in batches), each deletion audited. Kept forever when unset."),
      max_file_mb: z.number().int().min(1).max(1_000_000).optional().describe("The file sink starts a new file when the current one would pass this many MiB (besides one file per day)."),
    })
    .default({ export: [] })
    .describe("The audit log: how long it is kept, and where it is sent."),
  tracing: z
    .strictObject({
      endpoint: z
        .string()
        .regex(/^https?:\/\/\S+$/, "must be an http:// or https:// URL")
        .optional()
        .describe("An OpenTelemetry collector's OTLP/HTTP address (http://otel-collector:4318): each Azure request's spans go to its /v1/traces. Unset, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT if set; else nothing is traced."),
    })
    .default({})
    .describe("Tracing (docs/operations.md, \"Tracing\"): spans of the proxy and the agent, linked with the client's through W3C traceparent."),
  storage: z
    .discriminatedUnion(
      "type",
      [
        z.strictObject({ type: z.literal("file").describe("file: one JSON file per record under the data dir.") }),
        z.strictObject({
          type: z.literal("postgres").describe("postgres: PostgreSQL, for several replicas."),
          conn_string: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string").describe("postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=verify-full"),
          ca_file: z.string().min(1).optional().describe("CA certificates (a PEM file) to verify the server with, whatever sslmode says."),
          auth: z.enum(["password", "entra"], { message: 'must be "password" or "entra"' }).default("password").describe("password: from the connection string (or PGPASSWORD); entra: an Entra ID token from the pod's identity."),
          max_connections: z.number().int().min(1).max(1000).optional().describe("The pool's size per replica (1-1000; default 10)."),
        }),
      ],
      { message: 'type must be "file" or "postgres"' },
    )
    .default({ type: "file" })
    .describe("The backend: file (the default) or postgres."),
  agent: z
    .strictObject({
      proxy_addr: addr.optional().describe("The proxy's address (host or host:port)."),
      auth_token: z.string().min(1).optional().describe("The join token (azgate admin tokens add --type=app); needed at the first start only."),
      ca_pin: z.union([pinSchema, z.array(pinSchema).min(1).max(8)]).optional().describe("The cluster's CA pin (sha256:...), or a list of up to 8 (any may match: the old and the new CA while it rotates), as teleport-kube-agent's caPin."),
      proxy_ca_file: z.string().min(1).optional().describe("CA (PEM) of the TLS certificate at proxy_addr when an ingress or an operator certificate serves it; the web PKI and the cluster's CA are trusted anyway."),
      data_dir: z.string().optional().describe("Where the agent keeps its key, certificate and identity (default: data_dir)."),
      apps: z
        .array(agentAppSchema)
        .default([])
        .refine((apps) => new Set(apps.map((a) => a.cloud)).size <= 1, "all apps of one agent must name the same cloud (an agent's identity lives in one); run an agent per cloud")
        .describe("The apps the agent serves. One agent serves one cloud: its identity and its Entra ID live there."),
      connect_to: z
        .strictObject({ address: hostPort.describe("Where every Azure connection goes (host:port)."), ca_file: z.string().min(1).optional().describe("The CA (PEM) of that address; required with it.") })
        .optional()
        .describe("Like curl's --connect-to: every Azure connection goes to this address (the emulator), host names, SNI and Host kept."),
      diag_addr: hostPort.optional().describe("Plain-HTTP diagnostics on this address: /metrics, /healthz and /readyz (ready while the tunnel is up)."),
      log_level: z.enum(LOG_LEVELS).optional().describe("The lowest level of the agent's log lines written (teleport-kube-agent's log.level, in lower case)."),
    })
    .optional()
    .describe("The agent (start --mode agent)."),
});

export type Config = z.infer<typeof configSchema>;
