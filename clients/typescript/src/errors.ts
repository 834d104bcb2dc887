/** Answers that were not 2xx, as one error type carrying the API's problem+json. */
import type { components } from "./schema.js";

type ErrorCode = components["schemas"]["ErrorCode"];
type Problem = components["schemas"]["Problem"];

/**
 * An answer that was not 2xx. `problem` is the RFC 9457 body the API sends (null when
 * something in between answered instead, e.g. a proxy's HTML 502: then see `body`).
 */
export class VidgenError extends Error {
  override readonly name = "VidgenError";
  readonly status: number;
  readonly problem: Problem | null;
  readonly code: ErrorCode | null;
  /** `X-Request-Id`: quote it when reporting a 5xx. */
  readonly requestId: string | null;
  /** `Retry-After` in seconds (429, 503), when the server sent one. */
  readonly retryAfter: number | null;
  readonly body: unknown;
  readonly response: Response;

  constructor(response: Response, body: unknown) {
    const problem = isProblem(body) ? body : null;
    super(
      problem
        ? `${response.status} ${problem.code}: ${problem.detail}`
        : `${response.status} ${response.statusText || "error"}`,
    );
    this.status = response.status;
    this.problem = problem;
    this.code = problem?.code ?? null;
    this.requestId = problem?.request_id ?? response.headers.get("X-Request-Id");
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    this.retryAfter = Number.isNaN(retryAfter) ? null : retryAfter;
    this.body = body;
    this.response = response;
  }
}

export function isProblem(body: unknown): body is Problem {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { code?: unknown }).code === "string" &&
    typeof (body as { status?: unknown }).status === "number"
  );
}

/** What openapi-fetch answers: `{ data, response }` or `{ error, response }`. */
type Result = { data?: unknown; error?: unknown; response: Response };
/** The data of the success member (the member whose `error` is `never`). */
type SuccessData<R extends Result> = Extract<R, { error?: never }>["data"];

/** The data of a 2xx answer; anything else throws a `VidgenError`. */
export async function unwrap<R extends Result>(pending: Promise<R>): Promise<SuccessData<R>> {
  const { data, error, response } = await pending;
  if (!response.ok) {
    throw new VidgenError(response, error);
  }
  return data as SuccessData<R>;
}
