/**
 * The vidgen SDK: types generated from the public OpenAPI document (./schema.d.ts, never edit
 * it: scripts/generate-sdk), openapi-fetch for the calls, and a few hand-written helpers.
 *
 *   const vidgen = createVidgenClient({ baseUrl: "https://api.example.com", token });
 *   const video = await unwrap(vidgen.POST("/api/videos", { body, params: { header: {
 *     "Idempotency-Key": newIdempotencyKey() } } }));
 *   for await (const v of followVideo(vidgen, video.id)) render(v);
 */
import createClient, { type Client, type ClientOptions } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
export { isRetryable, isTerminal } from "./codes.js";
export { VidgenError, isProblem, unwrap } from "./errors.js";
export {
  followVideo,
  newParserState,
  parseEventStream,
  type FollowOptions,
  type ServerSentEvent,
} from "./events.js";

type Schemas = components["schemas"];
/** Every `code` a problem+json answer can carry (the `ErrorCode` enum of the document). */
export type ErrorCode = Schemas["ErrorCode"];
export type Problem = Schemas["Problem"];
export type FieldError = Schemas["FieldError"];
export type VideoCreate = Schemas["VideoCreate"];
export type VideoPublic = Schemas["VideoPublic"];
export type VideoStatus = Schemas["VideoStatus"];
export type VideosPage = Schemas["VideosPage"];
export type Quote = Schemas["Quote"];
export type CreditsPage = Schemas["CreditsPage"];
export type CreditTransaction = Schemas["CreditTransactionPublic"];
export type ModelPublic = Schemas["ModelPublic"];
export type Uploaded = Schemas["Uploaded"];

/** The openapi-fetch client over the public API: `GET`, `POST`, … typed by path. */
export type VidgenClient = Client<paths>;

export interface VidgenClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** The API's origin, e.g. `https://api.example.com` (no `/api`: the paths carry it). */
  baseUrl: string;
  /**
   * An API key (server side) or the frontend's JWT (browser). A function is called before
   * every request, so a short-lived JWT can be refreshed there.
   */
  token: string | (() => string | Promise<string>);
}

/** An openapi-fetch client that sends `Authorization: Bearer <token>` with every request. */
export function createVidgenClient({ token, ...options }: VidgenClientOptions): VidgenClient {
  const client = createClient<paths>(options);
  client.use({
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      request.headers.set("Authorization", `Bearer ${value}`);
      return request;
    },
  });
  return client;
}

/**
 * `POST /api/uploads`: an image (PNG, JPEG, WebP or GIF; a `File` from an `<input>` or any
 * `Blob`) as multipart form data. Pass the answer's `image_url` to `POST /api/videos`.
 */
export function uploadImage(client: VidgenClient, image: Blob, filename = "image") {
  return client.POST("/api/uploads", {
    // The document types the binary part as `string` (openapi-typescript's reading of
    // `format: binary`); the serializer sends the Blob itself.
    body: { file: filename },
    bodySerializer: () => {
      const form = new FormData();
      form.append("file", image, filename);
      return form;
    },
  });
}

/** A key for `Idempotency-Key`: one per intended operation, reused only for its retries. */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}
