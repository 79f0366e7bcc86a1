import os from "node:os";
import { splitHostPort, urlHost } from "../util/address.ts";
import { defaultPublicHost, type DefaultPublicHost } from "./public-url.ts";
import { audit } from "../audit/events.ts";
import { serve } from "../runtime/index.ts";
import type { Config } from "../config/schema.ts";
import { clusterPins, onAuthorityChange, pemOf } from "./cluster.ts";
import { scheduleRotations } from "./rotation.ts";
import type { ProxyContext } from "./context.ts";
import { createApi, proxyReadiness } from "./api.ts";
import { removeLocalAdmin, writeLocalAdmin } from "./local-admin.ts";
import { proxyTls } from "./tls.ts";
import { startDispatcher } from "./notify/outbox.ts";
import { ENDINGS_MS, recordEndings } from "./access-requests.ts";
import { sweepExpired } from "./admin.ts";
import { startRetention } from "./audit-retention.ts";
import { startAuditExport } from "./audit-export/exporter.ts";
import { startTracing, tracingEndpoint } from "../tracing/index.ts";
import { exportTarget } from "./audit-export/targets.ts";
import { openState, settingsFrom } from "./state.ts";
import { storedResourcesNotLoading } from "./stored-check.ts";
import { KEYS } from "./keys.ts";
import { AppRegistry } from "./registry.ts";
import { tunnelServer, type TunnelServer } from "./tunnels.ts";
import { advertise, cachedPeers } from "./peers.ts";
import { serveDiag } from "../health/probes.ts";
import { WS_MAX_PAYLOAD } from "../tunnel/index.ts";
import type { Clock } from "../util/clock.ts";

export interface RunningProxy {
  /** A loopback URL of this proxy (for the local admin and tests). */
  url: string;
  /** The diagnostics listener's port (/metrics, probes), when one was asked for. */
  diagPort?: number;
  publicUrl: string;
  /** Set when no public_addr was given: where the public URL's host came from. */
  publicUrlFrom?: DefaultPublicHost["from"];
  port: number;
  clusterName: string;
  caPins: string[];
  ctx: ProxyContext;
  registry: AppRegistry;
  tunnels: TunnelServer;
  close(): Promise<void>;
}

/** How long a stopping proxy lets open streams finish. */
const DRAIN_DEADLINE_MS = 10_000;

/** Starts proxy mode: lock the data dir, open state, serve the API over TLS. Every service decides by `clock`. */
export async function startProxy(config: Config & { data_dir: string }, clock: Clock): Promise<RunningProxy> {
  const listen = splitHostPort(config.proxy.listen, 3080);
  const pub = config.proxy.public_addr ? splitHostPort(config.proxy.public_addr, 443) : null;
  // Unset, links name the machine's host name when the proxy listens everywhere (public-url.ts).
  const derived = pub ? null : defaultPublicHost(listen.host, os.hostname());
  const { ctx, close } = await openState(config.data_dir, {
    clusterName: config.cluster_name ?? pub?.host ?? "azgate",
    settings: settingsFrom(config),
    purpose: "azgate proxy",
    storage: config.storage,
    audit: config.audit,
    clock,
  });
  const closers: (() => Promise<unknown>)[] = [close];
  // What an earlier release stored and this one would not load: served as each matcher reads it (deny applies, allow opens nothing), said here.
  for (const line of await storedResourcesNotLoading(ctx)) console.warn(`[proxy] stored by an earlier release, no longer loads (its deny rules apply where they cannot be read, its allow rules open nothing there; fix it and create it again): ${line}`);
  // Each Azure request's span, exported when an endpoint is set (tracing/); its spans leave before the state closes.
  ctx.tracing = await startTracing("azgate-proxy", tracingEndpoint(config.tracing?.endpoint));
  closers.push(() => ctx.tracing.shutdown());
  const shutdown = async () => {
    for (const fn of closers.reverse()) await fn().catch(() => undefined);
  };
  try {
    const tlsNames = [pub?.host ?? derived!.host, listen.host, config.proxy.advertise_addr ? splitHostPort(config.proxy.advertise_addr, 0).host : "", ...(config.proxy.server_names ?? [])];
    // Self-issued from the host CA the rotation's phase names (pki/rotation.ts caRoles), unless the operator gives one.
    const tls = await proxyTls({ certFile: config.proxy.tls?.cert_file, keyFile: config.proxy.tls?.key_file, hostCa: ctx.cluster.views.host.tls, names: tlsNames, now: clock.date() });
    const urls = { public: "" };
    const registry = new AppRegistry(clock);
    const replicaId = crypto.randomUUID();
    const peerList = cachedPeers(ctx);
    closers.push(async () => peerList.close());
    const tunnels = tunnelServer(ctx, registry, { id: replicaId, peers: peerList.peers });
    const api = createApi(ctx, { publicUrl: () => urls.public, registry, tunnels });
    const server = await serve({ fetch: api.fetch, hostname: listen.host, port: listen.port, tls, websocket: { maxPayload: WS_MAX_PAYLOAD, upgrade: (req) => tunnels.upgrade(req) } });
    closers.push(() => server.close());
    // Runs before the listener closes: agents and clients are told to move, open streams finish.
    closers.push(async () => {
      await tunnels.drain(DRAIN_DEADLINE_MS);
      tunnels.close();
    });
    urls.public = pub ? `https://${urlHost(pub.host)}${pub.port === 443 ? "" : `:${pub.port}`}` : `https://${derived!.host}:${server.port}`;
    // Remembered so the offline admin path can print invite links.
    await ctx.backend.put(KEYS.publicUrl, { url: urls.public });

    const loopback = listen.host === "0.0.0.0" || listen.host === "" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
    const localUrl = `https://${urlHost(loopback)}:${server.port}`;
    ctx.localAdminSession = await writeLocalAdmin(config.data_dir, ctx.cluster.user, localUrl, pemOf(ctx.cluster.views.host.tls.cert), tls.cert, clock.date());
    closers.push(() => removeLocalAdmin(config.data_dir));
    // A rotation (on any replica) that changes the host CA of the proxy's TLS certificate (update_servers, the final
    // standby, a rollback) or the user CA that signs: serve a certificate from the new CA to new connections (open
    // ones keep theirs), and write the local admin credentials again for the same session.
    let tlsCaPem = pemOf(ctx.cluster.views.host.tls.cert);
    let adminCaPem = pemOf(ctx.cluster.user.cert);
    let served = tls;
    let following = Promise.resolve();
    const unfollow = onAuthorityChange(ctx.cluster, () => {
      following = following.then(async () => {
        const hostTls = ctx.cluster.views.host.tls;
        const tlsMoved = pemOf(hostTls.cert) !== tlsCaPem;
        const adminMoved = pemOf(ctx.cluster.user.cert) !== adminCaPem;
        tlsCaPem = pemOf(hostTls.cert);
        adminCaPem = pemOf(ctx.cluster.user.cert);
        if (tlsMoved && served.selfIssued) {
          served = await proxyTls({ hostCa: hostTls, names: tlsNames, now: clock.date() });
          server.setTls(served);
        }
        if (tlsMoved || adminMoved) await writeLocalAdmin(config.data_dir, ctx.cluster.user, localUrl, tlsCaPem, served.cert, clock.date(), ctx.localAdminSession);
      }).catch((e) => console.error("[proxy] following the CA rotation failed:", (e as Error).message));
    });
    closers.push(async () => unfollow());
    const rotations = scheduleRotations(ctx);
    closers.push(async () => rotations.stop());

    if (config.proxy.advertise_addr) {
      // Port 0 stands for the port this replica listens on (tests, or a listener on a random port).
      const adv = splitHostPort(config.proxy.advertise_addr, server.port);
      const ad = advertise(ctx, { id: replicaId, addr: `${urlHost(adv.host)}:${adv.port || server.port}`, started: clock.date().toISOString() });
      closers.push(() => ad.stop());
    }

    let diagPort: number | undefined;
    if (config.proxy.diag_addr) {
      const hp = splitHostPort(config.proxy.diag_addr, 3000);
      const diag = await serveDiag(hp.host, hp.port, () => proxyReadiness(ctx, tunnels), async () => {
        const counts = tunnels.counts();
        ctx.metrics.tunnels.set({ kind: "agent" }, counts.agents);
        ctx.metrics.tunnels.set({ kind: "client" }, counts.clients);
        return { contentType: ctx.metrics.registry.contentType, text: await ctx.metrics.registry.metrics() };
      });
      diagPort = diag.port;
      closers.push(() => diag.close());
    }

    const sweeper = clock.every(60_000, () => void sweepExpired(ctx).catch((e) => console.error("[proxy] sweep failed:", e))).unref();
    closers.push(async () => sweeper.cancel());
    // Access requests' ends that come with time, in the audit log within ENDINGS_MS of happening.
    const endings = clock.every(ENDINGS_MS, () => void recordEndings(ctx).catch((e) => console.error("[proxy] recording access request endings failed:", e))).unref();
    closers.push(async () => endings.cancel());
    // Audit retention: events past audit.retention are deleted (and the deletion audited), hourly and now.
    if (ctx.settings.auditRetention) {
      const retention = startRetention(ctx, ctx.settings.auditRetention.ms);
      closers.push(() => retention.stop());
    }
    // Audit export: each target gets every event at least once, from its cursor in the backend (proxy/audit-export).
    if (config.audit.export.length) {
      const exporting = startAuditExport(
        // On the file backend one proxy holds the data dir (its lock): a restart after a crash is the same sender, and need not wait out the lease.
        { backend: ctx.backend, audit: ctx.audit, clock, replica: config.storage.type === "file" ? "data-dir" : replicaId, count: (target, what, n) => ctx.metrics.auditExport.inc({ target, result: what === "events" ? "sent" : "failed" }, n), log: (line) => console.error(line) },
        config.audit.export.map((t) => exportTarget(t, clock, ctx.cluster.name)),
      );
      closers.push(() => exporting.stop());
    }
    // Access-request notifications: every replica sends what is due from the shared outbox.
    const notifier = startDispatcher({ backend: ctx.backend, audit: ctx.audit, clock, context: async () => ({ cluster: ctx.cluster.name, proxyUrl: urls.public }), allowPrivateAddresses: config.notifications.allow_private_addresses });
    closers.push(async () => (notifier.stop(), await notifier.idle()));

    await ctx.audit.emit(audit("PROXY_STARTED", { cluster: ctx.cluster.name, listen: `${listen.host}:${server.port}` }));
    return { url: localUrl, diagPort, publicUrl: urls.public, publicUrlFrom: derived?.from, port: server.port, clusterName: ctx.cluster.name, caPins: await clusterPins(ctx.cluster), ctx, registry, tunnels, close: shutdown };
  } catch (e) {
    await shutdown();
    throw e;
  }
}
