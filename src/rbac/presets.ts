import type { Role } from "./types.ts";

/** Preset roles, created on the proxy's first start when missing. */
export const PRESET_ROLES: Role[] = [
  {
    kind: "role",
    version: "v7",
    metadata: { name: "access", description: "Access to every app, with the user's own Azure identities" },
    spec: {
      allow: { app_labels: { "*": "*" }, azure_identities: ["{{internal.azure_identities}}"] },
      options: { max_session_ttl: "12h" },
    },
  },
  {
    kind: "role",
    version: "v7",
    metadata: { name: "editor", description: "Manage users, roles, join tokens, connectors, notification targets, auto-review rules and locks" },
    spec: {
      allow: {
        rules: [
          { resources: ["user", "role", "token", "github", "oidc", "saml", "connector", "notification_target", "access_rule", "cluster", "lock"], verbs: ["list", "read", "create", "update", "delete"] },
          { resources: ["app"], verbs: ["list", "read"] },
        ],
      },
      options: { max_session_ttl: "8h" },
    },
  },
  {
    kind: "role",
    version: "v7",
    metadata: { name: "auditor", description: "Read the audit log" },
    spec: {
      allow: { rules: [{ resources: ["event"], verbs: ["list", "read"] }] },
      options: { max_session_ttl: "12h" },
    },
  },
];
