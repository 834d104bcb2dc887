/**
 * The SDK against a live server (tests/clients/test_typescript_sdk.py starts one with the Fal
 * simulator and a user with credits): VIDGEN_BASE_URL and VIDGEN_TOKEN say where and who.
 * VIDGEN_EXPECT_RESUME=1 says the server ends streams early (a short STREAM_MAX_LIFETIME_S),
 * so following a video must reconnect with Last-Event-ID.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type ErrorCode,
  type VideoCreate,
  type VideoPublic,
  type VideoStatus,
  VidgenError,
  createVidgenClient,
  followVideo,
  isRetryable,
  newIdempotencyKey,
  unwrap,
  uploadImage,
} from "../src/index.js";

const baseUrl = process.env.VIDGEN_BASE_URL;
const token = process.env.VIDGEN_TOKEN;
assert.ok(
  baseUrl && token,
  "set VIDGEN_BASE_URL and VIDGEN_TOKEN (tests/clients/test_typescript_sdk.py starts a server)",
);

// Every request the SDK makes, seen from the network side.
const requests: Request[] = [];
const vidgen = createVidgenClient({
  baseUrl,
  token,
  fetch: (input: Request) => {
    requests.push(input.clone());
    return fetch(input);
  },
});

// @ts-expect-error: a misspelt code does not compile.
const misspelt: ErrorCode = "insuficient_credits";
void misspelt;

const ORDER: VideoStatus[] = ["pending", "queued", "processing", "completed"];

test("create, replay, quote, follow to completed, then the balance and ledger", async (t) => {
  const models = await unwrap(vidgen.GET("/api/models"));
  const model = models.data.find((m) => m.kind === "text-to-video" && !m.requires_image);
  assert.ok(model, "a text-to-video model on sale");
  const before = await unwrap(vidgen.GET("/api/credits"));

  const body: VideoCreate = { model: model.id, prompt: `a paper boat ${newIdempotencyKey()}` };
  const quote = await unwrap(vidgen.POST("/api/videos/quote", { body }));
  assert.equal(quote.model, model.id);

  const key = newIdempotencyKey();
  const created = await vidgen.POST("/api/videos", {
    body,
    params: { header: { "Idempotency-Key": key } },
  });
  assert.equal(created.response.status, 202);
  assert.equal(created.response.headers.get("Idempotent-Replayed"), null);
  const video = created.data;
  assert.ok(video);
  assert.equal(video.credits_charged, quote.credits, "a create charges exactly the quote");

  const replayed = await vidgen.POST("/api/videos", {
    body,
    params: { header: { "Idempotency-Key": key } },
  });
  assert.equal(replayed.response.status, 202);
  assert.equal(replayed.response.headers.get("Idempotent-Replayed"), "true");
  assert.deepEqual(replayed.data, video, "a replay answers the first answer");

  const seen: VideoPublic[] = [];
  const ids: string[] = [];
  for await (const state of followVideo(vidgen, video.id, { onEventId: (id) => ids.push(id) })) {
    seen.push(state);
  }
  const statuses = seen.map((v) => v.status);
  assert.equal(statuses.at(-1), "completed", `statuses: ${statuses.join(" > ")}`);
  assert.ok(seen.every((v) => v.id === video.id));
  const ranks = statuses.map((s) => ORDER.indexOf(s));
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), `in order: ${statuses.join(" > ")}`);
  assert.equal(new Set(ids).size, ids.length, "no state twice");
  const done = seen.at(-1);
  assert.ok(done?.video?.url, "a completed video has its file");

  const streams = requests.filter((r) => r.url.endsWith(`/api/videos/${video.id}/events`));
  assert.ok(streams.every((r) => r.headers.get("Authorization") === `Bearer ${token}`));
  assert.equal(streams[0]?.headers.get("Last-Event-ID"), null);
  for (const resumed of streams.slice(1)) {
    assert.ok(ids.includes(resumed.headers.get("Last-Event-ID") ?? ""), "resumed from an id");
  }
  t.diagnostic(`${statuses.join(" > ")} over ${streams.length} stream connection(s)`);
  if (process.env.VIDGEN_EXPECT_RESUME === "1") {
    assert.ok(streams.length > 1, `the stream was resumed (${streams.length} connection)`);
  }

  const after = await unwrap(vidgen.GET("/api/credits"));
  assert.equal(after.balance, before.balance - quote.credits);
  const debit = after.data.find((t) => t.video_id === video.id);
  assert.ok(debit, "the ledger holds the video's debit");
  assert.equal(debit.kind, "debit");
  assert.equal(debit.amount, -quote.credits);
  assert.equal(debit.balance_after, after.balance);
});

test("aborting the signal ends the iteration quietly", async () => {
  const models = await unwrap(vidgen.GET("/api/models"));
  const model = models.data.find((m) => m.kind === "text-to-video" && !m.requires_image);
  assert.ok(model);
  const video = await unwrap(
    vidgen.POST("/api/videos", {
      body: { model: model.id, prompt: "a kite over dunes" },
      params: { header: { "Idempotency-Key": newIdempotencyKey() } },
    }),
  );
  const stop = new AbortController();
  const seen: VideoStatus[] = [];
  for await (const state of followVideo(vidgen, video.id, { signal: stop.signal })) {
    seen.push(state.status);
    stop.abort();
  }
  assert.equal(seen.length, 1);
});

// A 1×1 PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==",
  "base64",
);

test("an upload is multipart, and its image_url prices an image-to-video quote", async () => {
  const uploaded = await unwrap(uploadImage(vidgen, new Blob([PNG], { type: "image/png" }), "dot.png"));
  assert.equal(uploaded.content_type, "image/png");
  assert.equal(uploaded.size, PNG.length);
  assert.ok(uploaded.image_url.startsWith("upload:"));

  const models = await unwrap(vidgen.GET("/api/models"));
  const model = models.data.find((m) => m.requires_image);
  assert.ok(model, "an image-to-video model on sale");
  const quote = await unwrap(
    vidgen.POST("/api/videos/quote", {
      body: { model: model.id, prompt: "the dot drifts", image_url: uploaded.image_url },
    }),
  );
  assert.ok(quote.credits > 0);
});

test("errors are VidgenError with a typed code", async () => {
  const missing = "00000000-0000-4000-8000-000000000000";
  const error = await unwrap(
    vidgen.GET("/api/videos/{video_id}", { params: { path: { video_id: missing } } }),
  ).then(
    () => assert.fail("a missing video is not found"),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof VidgenError);
  assert.equal(error.status, 404);
  assert.equal(error.code, "video_not_found");
  assert.equal(error.problem?.status, 404);
  assert.ok(error.requestId, "a problem names its request");
  assert.equal(isRetryable(error.code), false);

  await assert.rejects(
    async () => {
      for await (const _ of followVideo(vidgen, missing)) {
        assert.fail("no event for a missing video");
      }
    },
    (caught: unknown) => caught instanceof VidgenError && caught.code === "video_not_found",
  );

  const key = newIdempotencyKey();
  const models = await unwrap(vidgen.GET("/api/models"));
  const model = models.data.find((m) => m.kind === "text-to-video" && !m.requires_image);
  assert.ok(model);
  const first = { model: model.id, prompt: "a lighthouse in fog" };
  const header = { "Idempotency-Key": key };
  await unwrap(vidgen.POST("/api/videos", { body: first, params: { header } }));
  const reused = await vidgen.POST("/api/videos", {
    body: { ...first, prompt: "another prompt" },
    params: { header },
  });
  assert.equal(reused.response.status, 422);
  assert.equal(reused.error?.code, "idempotency_key_reused");
});
