/**
 * Live updates over `fetch`: `EventSource` cannot send `Authorization`, so this reads
 * `GET /api/videos/{id}/events` itself, parsing the text/event-stream format (WHATWG HTML,
 * "Server-sent events") and reconnecting with `Last-Event-ID` as EventSource would.
 */
import { isTerminal } from "./codes.js";
import { VidgenError } from "./errors.js";
import type { VidgenClient } from "./index.js";
import type { components } from "./schema.js";

type VideoPublic = components["schemas"]["VideoPublic"];

/** One dispatched event: `event` defaults to "message"; `id` is the last id seen so far. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | null;
}

/** The parser's state between chunks (a line, or an event, may span several). */
interface ParserState {
  buffer: string;
  event: string;
  data: string[];
  id: string | null;
  retry: number | null;
}

/**
 * Events out of a text/event-stream, chunk by chunk: `:` comments (keep-alive) are skipped,
 * `retry:` is kept in the returned state, an event without data is not dispatched.
 */
export function* parseEventStream(
  chunk: string,
  state: ParserState,
  final = false,
): Generator<ServerSentEvent> {
  state.buffer += chunk;
  for (;;) {
    const end = state.buffer.search(/\r\n|\r|\n/);
    // A lone CR at the end may be the first half of a CRLF still on its way.
    if (end < 0 || (end === state.buffer.length - 1 && state.buffer.endsWith("\r") && !final)) {
      break;
    }
    const line = state.buffer.slice(0, end);
    const width = state.buffer.startsWith("\r\n", end) ? 2 : 1;
    state.buffer = state.buffer.slice(end + width);
    if (line === "") {
      if (state.data.length > 0) {
        yield { event: state.event || "message", data: state.data.join("\n"), id: state.id };
      }
      state.event = "";
      state.data = [];
      continue;
    }
    if (line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "event") {
      state.event = value;
    } else if (field === "data") {
      state.data.push(value);
    } else if (field === "id" && !value.includes("\0")) {
      state.id = value;
    } else if (field === "retry" && /^\d+$/.test(value)) {
      state.retry = Number(value);
    }
  }
}

export function newParserState(lastEventId: string | null = null): ParserState {
  return { buffer: "", event: "", data: [], id: lastEventId, retry: null };
}

export interface FollowOptions {
  /** Stops following: the iteration then just ends. */
  signal?: AbortSignal;
  /** Resume after this event (the states up to it are not sent again). */
  lastEventId?: string;
  /** Called with each event's id, e.g. to resume after a page reload. */
  onEventId?: (id: string) => void;
  /** Without a byte (not even a keep-alive comment) for this long, reconnect. Default 45 s. */
  idleTimeoutMs?: number;
  /** Wait before reconnecting (the server's `retry:` replaces it); doubled after each
   * consecutive failure, up to 30 s. Default 1 s. */
  retryMs?: number;
  /** Consecutive failed connections (network errors, 5xx, silence) before throwing. 5. */
  maxRetries?: number;
}

/**
 * The video's states as they change, starting with the current one, until a terminal
 * status (`completed`, `failed`, `canceled`), which is the last value. A stream the server
 * ends earlier (its lifetime, a restart) or the network drops is resumed with
 * `Last-Event-ID`, so no state is repeated and the latest is never missed. A 4xx answer
 * (401, 404, 429 `too_many_streams`) throws `VidgenError`; so does a 5xx or a network error
 * after `maxRetries` attempts in a row.
 */
export async function* followVideo(
  client: VidgenClient,
  videoId: string,
  options: FollowOptions = {},
): AsyncGenerator<VideoPublic, void, undefined> {
  const { signal, onEventId, idleTimeoutMs = 45_000, maxRetries = 5 } = options;
  let lastEventId = options.lastEventId ?? null;
  let retryMs = options.retryMs ?? 1000;
  let failures = 0;

  while (!signal?.aborted) {
    // One connection, ended by the caller's signal or by silence.
    const connection = new AbortController();
    const abort = () => connection.abort();
    signal?.addEventListener("abort", abort);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const awake = () => {
      clearTimeout(idle);
      idle = setTimeout(abort, idleTimeoutMs);
    };
    let received = 0;
    let failure: unknown = null;
    try {
      awake();
      const { data, error, response } = await client.GET("/api/videos/{video_id}/events", {
        params: {
          path: { video_id: videoId },
          header: lastEventId === null ? {} : { "Last-Event-ID": lastEventId },
        },
        headers: { Accept: "text/event-stream" },
        parseAs: "stream",
        signal: connection.signal,
      });
      if (!response.ok) {
        const problem = new VidgenError(response, error);
        if (response.status < 500) {
          throw problem;
        }
        failure = problem;
      } else if (data) {
        const state = newParserState(lastEventId);
        const reader = data.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            awake();
            for (const event of parseEventStream(value ?? "", state, done)) {
              if (event.event !== "status") {
                continue; // a kind of event this SDK does not know yet
              }
              const video = JSON.parse(event.data) as VideoPublic;
              received += 1;
              failures = 0;
              if (event.id !== null) {
                lastEventId = event.id;
                onEventId?.(event.id);
              }
              clearTimeout(idle); // the caller's time between values is not silence
              yield video;
              if (isTerminal(video.status)) {
                return;
              }
              awake();
            }
            retryMs = state.retry ?? retryMs;
            if (done) {
              break;
            }
          }
        } finally {
          reader.cancel().catch(() => {});
        }
      }
    } catch (caught) {
      if (signal?.aborted) {
        return;
      }
      if (caught instanceof VidgenError) {
        throw caught;
      }
      failure = caught; // a network error, an unreadable event, or silence (the idle abort)
    } finally {
      clearTimeout(idle);
      signal?.removeEventListener("abort", abort);
    }

    if (failure === null && received === 0) {
      // The stream ended with nothing new: it lived out its lifetime while the video did not
      // change, or the state we resume from is the last one already (then we are done).
      try {
        const { data: video, error, response } = await client.GET("/api/videos/{video_id}", {
          params: { path: { video_id: videoId } },
          signal,
        });
        if (!response.ok) {
          const problem = new VidgenError(response, error);
          if (response.status < 500) {
            throw problem;
          }
          failure = problem;
        } else if (video && isTerminal(video.status)) {
          return;
        }
      } catch (caught) {
        if (signal?.aborted) {
          return;
        }
        if (caught instanceof VidgenError) {
          throw caught;
        }
        failure = caught;
      }
      if (failure === null) {
        await sleep(retryMs, signal);
        continue;
      }
    }
    if (failure !== null) {
      failures += 1;
      if (failures > maxRetries) {
        throw failure;
      }
      await sleep(Math.min(retryMs * 2 ** (failures - 1), 30_000), signal);
    }
    // The server ended a stream that had news (its lifetime): reconnect at once.
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}
