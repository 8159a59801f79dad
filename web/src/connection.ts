// The WebSocket and what the page shows about it: live, reconnecting, or polling.
import { useSyncExternalStore } from "react";
import { createClient, type Client } from "graphql-ws";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "polling";

// After this many failed connection attempts in a row the page stops waiting and polls
// `task(id)` / `tasks` over HTTP, while it keeps trying the socket in the background.
export const POLL_AFTER_FAILURES = 2;
// How often a polling page asks again: fast enough to watch a task move.
export const POLL_INTERVAL_MS = 1_000;
// Between reconnection attempts: doubling from the first, capped at the last.
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 4_000;
// A ping keeps proxies from closing a quiet socket, and finds a dead one.
const KEEP_ALIVE_MS = 10_000;
// A server that accepts the socket but never acknowledges it counts as a failure.
const ACK_TIMEOUT_MS = 10_000;

// The smallest operation: its answer proves the socket is back.
const PROBE = "{ __typename }";

type Listener = () => void;

class Connection {
  state: ConnectionState = "connecting";
  private failures = 0;
  private probe: ReturnType<typeof setTimeout> | undefined;
  private listeners = new Set<Listener>();
  readonly client: Client;

  constructor(url: string) {
    this.client = createClient({
      url,
      // Open from the start and kept open: every page follows something, and a close is
      // then always news (a lazy client closes an idle socket itself).
      lazy: false,
      keepAlive: KEEP_ALIVE_MS,
      connectionAckWaitTimeout: ACK_TIMEOUT_MS,
      // Subscriptions are resumed by useResumingSubscription, each with the last
      // sequence it showed; the client's own retry would resend the first `after`.
      retryAttempts: 0,
      on: {
        connected: () => {
          this.failures = 0;
          this.set("live");
        },
        closed: () => this.failed(),
      },
    });
  }

  failed(): void {
    this.failures += 1;
    this.set(this.failures >= POLL_AFTER_FAILURES ? "polling" : "reconnecting");
    this.probeLater();
  }

  /** Try the socket again after a while even when no subscription is waiting for it (a
   * finished task's page), so the page goes back to live when it can. */
  private probeLater(): void {
    if (this.probe !== undefined) return;
    this.probe = setTimeout(() => {
      this.probe = undefined;
      if (this.state === "live") return;
      const ignore = () => undefined;
      this.client.subscribe({ query: PROBE }, { next: ignore, error: ignore, complete: ignore });
    }, this.retryDelay());
  }

  retryDelay(): number {
    return Math.min(RETRY_FIRST_MS * 2 ** Math.max(0, this.failures - 1), RETRY_MAX_MS);
  }

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot = (): ConnectionState => this.state;

  private set(state: ConnectionState): void {
    if (state === this.state) return;
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}

function socketUrl(): string {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

export const connection = new Connection(socketUrl());

export function useConnectionState(): ConnectionState {
  return useSyncExternalStore(connection.subscribe, connection.snapshot);
}
