/**
 * The naive chain the bench compares azgate with: the same three processes
 * (client, relay, agent), the same legs (WebSocket over TLS from the client
 * and from the agent to the relay, HTTPS from the agent to "Azure"), the same
 * token swap, and nothing else: no authentication, no policy, no audit, no
 * flow control of its own, one client. Run by scripts/bench.ts:
 *
 *   tsx scripts/naive/chain.ts relay PORT CERT_FILE KEY_FILE
 *   tsx scripts/naive/chain.ts agent RELAY_URL RELAY_CA_FILE AZURE_ADDR AZURE_CA_FILE
 *     (real tokens in NAIVE_ARM_TOKEN and NAIVE_STORAGE_TOKEN)
 */
import https from "node:https";
import { readFileSync } from "node:fs";
import { WebSocket, WebSocketServer, createWebSocketStream } from "ws";
import { DATA, END, FrameReader, HEAD, frame, type Frame } from "./frames.ts";

const [mode, ...args] = process.argv.slice(2);

if (mode === "relay") {
  const [port, certFile, keyFile] = args;
  const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) });
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 30 });
  let agent: ReturnType<typeof createWebSocketStream> | null = null;
  wss.on("connection", (ws, req) => {
    const stream = createWebSocketStream(ws);
    stream.on("error", () => ws.terminate());
    // An idle connection held and nothing more: what the bench's idle-tunnel rows compare azgate's with.
    if (req.url === "/idle") return;
    if (req.url === "/agent") {
      agent = stream;
      return;
    }
    if (!agent) return ws.close();
    // The relay's whole job: bytes from the client to the agent and back, with the streams' backpressure.
    stream.pipe(agent, { end: false });
    agent.pipe(stream, { end: false });
    ws.once("close", () => agent?.unpipe(stream));
  });
  server.listen(Number(port), "127.0.0.1", () => console.log("relay ready"));
} else if (mode === "agent") {
  const [relayUrl, relayCaFile, azureAddr, azureCaFile] = args;
  const [azureHost, azurePort] = azureAddr.split(":");
  const azureCa = readFileSync(azureCaFile);
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 64 });
  const ws = new WebSocket(`${relayUrl}/agent`, { ca: readFileSync(relayCaFile), perMessageDeflate: false, maxPayload: 1 << 30 });
  ws.once("open", () => {
    const out = createWebSocketStream(ws);
    const requests = new Map<number, ReturnType<typeof https.request>>();
    const reader = out.pipe(new FrameReader());
    reader.on("data", (f: Frame) => {
      if (f.type === HEAD) {
        const head = JSON.parse(f.payload.toString()) as { method: string; url: string; headers: Record<string, string> };
        const url = new URL(head.url);
        const token = url.hostname.includes(".blob.") ? process.env.NAIVE_STORAGE_TOKEN : process.env.NAIVE_ARM_TOKEN;
        const req = https.request({ host: azureHost, port: Number(azurePort), servername: url.hostname, ca: azureCa, agent: keepAlive, method: head.method, path: url.pathname + url.search, headers: { ...head.headers, host: url.hostname, authorization: `Bearer ${token}` } }, (res) => {
          out.write(frame(f.id, HEAD, Buffer.from(JSON.stringify({ status: res.statusCode, headers: res.headers }))));
          res.on("data", (chunk: Buffer) => {
            if (!out.write(frame(f.id, DATA, chunk))) {
              res.pause();
              out.once("drain", () => res.resume());
            }
          });
          res.on("end", () => out.write(frame(f.id, END)));
        });
        req.on("error", (e) => out.write(frame(f.id, HEAD, Buffer.from(JSON.stringify({ status: 502, headers: {}, error: e.message })))));
        requests.set(f.id, req);
      } else if (f.type === DATA) {
        const req = requests.get(f.id);
        if (req && !req.write(f.payload)) {
          reader.pause();
          req.once("drain", () => reader.resume());
        }
      } else if (f.type === END) {
        requests.get(f.id)?.end();
        requests.delete(f.id);
      }
    });
    console.log("agent ready");
  });
  ws.once("error", (e) => {
    console.error(`agent: ${e.message}`);
    process.exit(1);
  });
}
