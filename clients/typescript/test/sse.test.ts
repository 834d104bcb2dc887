/** The text/event-stream parser on its own: chunk boundaries anywhere, any line ending. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { type ServerSentEvent, newParserState, parseEventStream } from "../src/index.js";

function parse(chunks: string[]): { events: ServerSentEvent[]; retry: number | null } {
  const state = newParserState();
  const events: ServerSentEvent[] = [];
  chunks.forEach((chunk, i) => events.push(...parseEventStream(chunk, state, i === chunks.length - 1)));
  return { events, retry: state.retry };
}

const STREAM =
  ": keep-alive\r\n\r\nevent: status\r\nid: 1-aa\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n" +
  "retry: 2500\n: keep-alive\n\nevent: status\nid: 2-bb\ndata: {}\n\n" +
  "data: no event name\rid\r\r";

test("events, ids, comments and retry, whatever the chunking", () => {
  const expected = [
    { event: "status", id: "1-aa", data: '{"a":\n1}' },
    { event: "status", id: "2-bb", data: "{}" },
    { event: "message", id: "", data: "no event name" },
  ];
  for (let size = 1; size <= STREAM.length; size += 1) {
    const chunks = [];
    for (let at = 0; at < STREAM.length; at += size) {
      chunks.push(STREAM.slice(at, at + size));
    }
    const { events, retry } = parse([...chunks, ""]);
    assert.deepEqual(events, expected, `chunks of ${size}`);
    assert.equal(retry, 2500);
  }
});

test("an event without its blank line is not dispatched", () => {
  assert.deepEqual(parse(["event: status\ndata: {}\n", ""]).events, []);
});
