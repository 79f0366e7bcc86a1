import { createHash } from "node:crypto";
import { putIfAbsent, type Backend } from "../storage/backend.ts";
import type { Clock } from "../util/clock.ts";

/**
 * Remembers proof nonces until their proof could no longer pass the clock
 * window, so a captured proof cannot be sent twice.
 */
export interface ReplayCache {
  /** True the first time a nonce is seen; false for a replay. */
  remember(nonce: string, expiresAtMs: number): Promise<boolean>;
}

/** One proxy process (the file backend allows no other): memory is enough. */
export class MemoryReplayCache implements ReplayCache {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  /** The clock the proofs are judged by (their window and the nonce's end are the same times). */
  constructor(private readonly clock: Clock) {}

  async remember(nonce: string, expiresAtMs: number): Promise<boolean> {
    const now = this.clock.now();
    if (now - this.lastSweep > 10_000) this.sweep(now);
    const until = this.seen.get(nonce);
    if (until !== undefined && until > now) return false;
    this.seen.set(nonce, expiresAtMs);
    return true;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
  }
}

/**
 * Several replicas: a proof replayed to another replica must be refused
 * there too, so nonces are claimed in the shared backend (compare-and-swap
 * on an absent key), and expire with the proof's window: the backend judges
 * that expiry by the same clock that judged the proof.
 */
export class BackendReplayCache implements ReplayCache {
  constructor(private readonly backend: Backend) {}

  remember(nonce: string, expiresAtMs: number): Promise<boolean> {
    return putIfAbsent(this.backend, `proof-nonces/${createHash("sha256").update(nonce).digest("hex")}`, 1, { expires: new Date(expiresAtMs) });
  }
}
