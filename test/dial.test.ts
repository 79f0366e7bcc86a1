/**
 * What dialTunnel puts on the wire, read by a bare TLS server that completes
 * the WebSocket upgrade by hand: the client's frames are masked, as RFC 6455
 * requires of a client, with an all-zero key. Masking guards cleartext
 * intermediaries against bytes a browser script chose; the tunnel is TLS from
 * azgate's own processes, and a zero key lets `ws` skip the XOR on both ends
 * (it ran in JavaScript on every byte: streaming was 2.5 times slower).
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import { createHash } from "node:crypto";
import type net from "node:net";
import type { AddressInfo } from "node:net";
import "reflect-metadata";
import { createAuthority } from "../src/pki/authority.ts";
import { issueServerCert } from "../src/pki/certificate.ts";
import { generateKeyPair, privateKeyToPem } from "../src/pki/keys.ts";
import { dialTunnel } from "../src/tunnel/dial.ts";

describe("dialTunnel's frames", () => {
  let server: https.Server;
  let caPem: string;
  let certPem: string;
  let clientKey: CryptoKey;
  let received: Promise<Buffer>;

  beforeAll(async () => {
    const ca = await createAuthority("host", "dial-test", new Date());
    const keys = await generateKeyPair();
    const cert = await issueServerCert({ ca, publicKey: keys.publicKey, dnsNames: ["localhost"], ips: ["127.0.0.1"], now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
    caPem = ca.cert.toString("pem");
    // Any certificate serves for the proof of possession; this server does not check it.
    certPem = cert.toString("pem");
    clientKey = keys.privateKey;
    server = https.createServer({ key: await privateKeyToPem(keys.privateKey), cert: cert.toString("pem") });
    received = new Promise((resolve) => {
      server.on("upgrade", (req, socket: net.Socket) => {
        const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
        const chunks: Buffer[] = [];
        socket.on("data", (d: Buffer) => {
          chunks.push(d);
          resolve(Buffer.concat(chunks));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it("are masked with an all-zero key, so the payload crosses unchanged", async () => {
    const session = await dialTunnel({ baseUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, path: "/v1/tunnel/client", caPems: [caPem], key: clientKey, certPem, session: {}, clock: systemClock });
    try {
      session.open({ type: "probe", marker: "zero-mask-marker" });
      const frame = await received;
      expect(frame[1] & 0x80).toBe(0x80);
      const length = frame[1] & 0x7f;
      const keyAt = length === 126 ? 4 : length === 127 ? 10 : 2;
      expect([...frame.subarray(keyAt, keyAt + 4)]).toEqual([0, 0, 0, 0]);
      expect(frame.subarray(keyAt + 4).toString("latin1")).toContain("zero-mask-marker");
    } finally {
      session.close();
    }
  });
});
