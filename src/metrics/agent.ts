/** The agent's Prometheus metrics: Entra token fetches and the token cache. */
import { Counter, Histogram, Registry } from "prom-client";

export function agentMetrics() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    tokenFetch: new Histogram({
      name: "azgate_entra_token_fetch_seconds",
      help: "Time to get a token from Entra ID (Workload ID or managed identity), by outcome",
      labelNames: ["outcome"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    tokenLookups: new Counter({ name: "azgate_entra_token_lookups_total", help: "Token lookups by the agent, by cache result (hit, miss): the hit rate is hit / all", labelNames: ["result"], registers }),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;
