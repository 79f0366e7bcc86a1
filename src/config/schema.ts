import { z } from "zod";
import { parseDuration } from "../util/duration.ts";
import { isCidr } from "../net/address-policy.ts";
import { CLOUD_NAMES } from "../azure/clouds.ts";
import { LOG_LEVELS } from "../util/log.ts";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/, "must be host:port, for example 0.0.0.0:3080");
const addr = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?$/, "must be host or host:port, for example proxy.example.com:3080");
const duration = z.string().refine((v) => {
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}, "must be a duration such as 30m or 1h");

/** An app's name, as agents announce it (and as access requests must name one). */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const agentAppSchema = z.strictObject({
  name: z.string().regex(APP_NAME, "must be lowercase letters, digits and '-'"),
  /** Azure (public), AzureUSGovernment or AzureChinaCloud (azure/clouds.ts). */
  cloud: z.enum(CLOUD_NAMES, { message: `must be one of ${CLOUD_NAMES.join(", ")}` }).default("Azure"),
  uri: z.string().default("cloud://Azure"),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
});

/** true or false; from the environment, "true" or "false". */
const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], { message: "must be true or false" });

const pinSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 hex digits>");

export const configSchema = z.strictObject({
  version: z.literal("v1", { message: 'must be "v1"' }).default("v1"),
  cluster_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$/, "must be letters, digits, '.' and '-'").optional(),
  data_dir: z.string().min(1).optional(),
  proxy: z
    .strictObject({
      listen: hostPort.default("0.0.0.0:3080"),
      public_addr: addr.optional(),
      /** This replica's own address, advertised to agents so they hold a tunnel to every replica. */
      advertise_addr: hostPort.optional(),
      /** Plain-HTTP diagnostics: /metrics (Prometheus), /healthz, /readyz. */
      diag_addr: hostPort.optional(),
      tls: z.strictObject({ cert_file: z.string().min(1), key_file: z.string().min(1) }).optional(),
      /** More names (DNS or IP) for the certificate the proxy issues itself, e.g. the Service name in-cluster agents dial. */
      server_names: z.array(z.string().min(1).max(253)).max(32).optional(),
      /** Fronts (an Ingress controller's, a load balancer's addresses, as CIDRs) trusted to say who the caller is in X-Forwarded-For. */
      trusted_proxies: z.array(z.string().refine(isCidr, "must be an IP address or a CIDR range (10.0.0.0/8, fd00::/8)")).max(64).optional(),
    })
    .default({ listen: "0.0.0.0:3080" }),
  auth: z
    .strictObject({
      second_factor: z.enum(["otp", "off"], { message: 'must be "otp" or "off"' }).default("otp"),
      invite_ttl: duration.default("1h"),
      host_cert_ttl: duration.default("24h"),
      /** How long an SSO login may take from start to certificate pickup. */
      sso_login_timeout: duration.default("3m"),
      lockout: z
        .strictObject({ max_attempts: z.number().int().min(1).max(100).default(5), window: duration.default("30m"), lock_duration: duration.default("30m") })
        .default({ max_attempts: 5, window: "30m", lock_duration: "30m" }),
    })
    .default({ second_factor: "otp", invite_ttl: "1h", host_cert_ttl: "24h", sso_login_timeout: "3m", lockout: { max_attempts: 5, window: "30m", lock_duration: "30m" } }),
  /** Access-request notifications (the targets themselves are resources: notification_target). */
  notifications: z
    .strictObject({
      /** Send to receivers on loopback, link-local (IMDS), private and other special addresses (net/address-policy.ts); refused by default. */
      allow_private_addresses: flag.default(false),
    })
    .default({ allow_private_addresses: false }),
  storage: z
    .discriminatedUnion(
      "type",
      [
        z.strictObject({ type: z.literal("file") }),
        z.strictObject({
          type: z.literal("postgres"),
          /** postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=verify-full */
          conn_string: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string"),
          /** CA certificates (PEM file) to verify the server with. */
          ca_file: z.string().min(1).optional(),
          /** password: from the connection string (or PGPASSWORD); entra: an Entra ID token from the pod's identity. */
          auth: z.enum(["password", "entra"], { message: 'must be "password" or "entra"' }).default("password"),
          max_connections: z.number().int().min(1).max(1000).optional(),
        }),
      ],
      { message: 'type must be "file" or "postgres"' },
    )
    .default({ type: "file" }),
  agent: z
    .strictObject({
      proxy_addr: addr.optional(),
      auth_token: z.string().min(1).optional(),
      /** One pin, or a list (any may match: the old and the new CA while it rotates), as teleport-kube-agent's caPin. */
      ca_pin: z.union([pinSchema, z.array(pinSchema).min(1).max(8)]).optional(),
      /** CA (PEM) of the TLS certificate at proxy_addr when an ingress or an operator certificate serves it; the web PKI and the cluster's CA are trusted anyway. */
      proxy_ca_file: z.string().min(1).optional(),
      data_dir: z.string().optional(),
      /** One agent serves one cloud: its identity and its Entra ID live there. */
      apps: z
        .array(agentAppSchema)
        .default([])
        .refine((apps) => new Set(apps.map((a) => a.cloud)).size <= 1, "all apps of one agent must name the same cloud (an agent's identity lives in one); run an agent per cloud"),
      /** Like curl's --connect-to: every Azure connection goes to this address (the emulator), names kept. */
      connect_to: z.strictObject({ address: hostPort, ca_file: z.string().min(1).optional() }).optional(),
      /** /healthz and /readyz over plain HTTP (Kubernetes probes). */
      diag_addr: hostPort.optional(),
      /** The lowest level of the agent's log lines written (teleport-kube-agent's log.level, in lower case). */
      log_level: z.enum(LOG_LEVELS).optional(),
    })
    .optional(),
});

export type Config = z.infer<typeof configSchema>;
