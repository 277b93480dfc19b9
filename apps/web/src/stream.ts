// The live stream client: GET /api/v1/stream read with fetch, because the browser's EventSource
// cannot send an Authorization header, and the key must not go in the URL. It resumes after
// a drop with Last-Event-ID (the last `id:` seen), so no activity is missed or repeated.

import { createParser, type EventSourceMessage } from "eventsource-parser";

import type { Activity, FlowStatus } from "./types";

export type StreamState = "connecting" | "live" | "reconnecting" | "stopped";

export interface StreamHandlers {
  onActivity: (activity: Activity) => void;
  onStatus: (id: string, status: FlowStatus) => void;
  onState: (state: StreamState, detail?: string) => void;
  onReset: () => void;
  onUnauthorized: () => void;
}

const MAX_RETRY_MS = 30_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export function openStream(authorization: string, handlers: StreamHandlers): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  let lastEventId: string | null = null;
  let retryMs = 2_000;
  let failures = 0;
  const stopped = (): boolean => signal.aborted;

  function dispatch(message: EventSourceMessage): void {
    if (message.id) lastEventId = message.id;
    switch (message.event) {
      case "activity":
        handlers.onActivity(JSON.parse(message.data) as Activity);
        break;
      case "status": {
        const { id, ...status } = JSON.parse(message.data) as FlowStatus & { id: string };
        handlers.onStatus(id, status);
        break;
      }
      case "reset":
        handlers.onReset();
        break;
      case "error":
        handlers.onState("stopped", (JSON.parse(message.data) as { detail: string }).detail);
        controller.abort();
        break;
      default:
        break; // hello and future kinds
    }
  }

  async function run(): Promise<void> {
    while (!stopped()) {
      handlers.onState(lastEventId === null ? "connecting" : "reconnecting");
      try {
        const headers: Record<string, string> = {
          Authorization: authorization,
          Accept: "text/event-stream",
        };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        const response = await fetch("/api/v1/stream", {
          headers,
          signal,
          cache: "no-store",
          credentials: "omit",
        });
        if (response.status === 401) {
          handlers.onUnauthorized();
          return;
        }
        if (!response.ok || response.body === null) {
          throw new Error(`HTTP ${response.status}`);
        }
        handlers.onState("live");
        failures = 0;
        const parser = createParser({
          onEvent: dispatch,
          onRetry: (ms) => {
            retryMs = ms;
          },
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch {
        // a network error or the stream cut: reconnect below, unless stopped
      }
      if (stopped()) return;
      failures += 1;
      handlers.onState("reconnecting");
      await sleep(Math.min(MAX_RETRY_MS, retryMs * 2 ** Math.min(failures - 1, 4)), signal);
    }
  }

  void run();
  return () => {
    controller.abort();
  };
}
