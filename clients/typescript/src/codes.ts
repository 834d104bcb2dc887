/**
 * Decisions over the API's closed sets, as exhaustive `switch`es: when the API adds an error
 * code or a video status, `tsc --strict` fails here (`never`) until someone decides what the
 * new value means. That build failure is the point.
 */
import type { components } from "./schema.js";

type ErrorCode = components["schemas"]["ErrorCode"];
type VideoStatus = components["schemas"]["VideoStatus"];

function unhandled(value: never): never {
  throw new Error(`unhandled value: ${String(value)}`);
}

/**
 * Whether the same request may succeed later, unchanged (after `Retry-After` when the answer
 * has one). A create is safe to retry only with the same `Idempotency-Key`.
 */
export function isRetryable(code: ErrorCode): boolean {
  switch (code) {
    case "auth_provider_unavailable": // the identity provider's keys could not be fetched
    case "database_unavailable":
    case "idempotency_key_in_flight": // the first request with this key is still running
    case "internal_error": // a bug: with an Idempotency-Key the retry is safe
    case "maintenance":
    case "rate_limited":
    case "too_many_active_jobs": // once one of the user's jobs ends
    case "too_many_streams": // once one of the user's streams closes
      return true;
    case "bad_request":
    case "balance_limit_exceeded":
    case "credit_roll_exists":
    case "duplicate_transaction":
    case "email_taken":
    case "forbidden":
    case "idempotency_key_invalid":
    case "idempotency_key_missing":
    case "idempotency_key_reused":
    case "image_not_allowed":
    case "image_required":
    case "insufficient_credits":
    case "invalid_cursor":
    case "invalid_image_url":
    case "invalid_video_request":
    case "invalid_webhook_signature":
    case "malformed_body":
    case "malformed_webhook":
    case "media_link_invalid":
    case "media_not_found":
    case "method_not_allowed":
    case "model_not_found":
    case "not_found":
    case "payload_too_large":
    case "prompt_too_long":
    case "request_header_fields_too_large":
    case "unauthorized":
    case "unsupported_aspect_ratio":
    case "unsupported_combination":
    case "unsupported_duration":
    case "unsupported_image_type":
    case "unsupported_parameter":
    case "unsupported_resolution":
    case "unsupported_value":
    case "upload_not_found":
    case "upload_too_large":
    case "user_not_found":
    case "validation_error":
    case "video_not_cancelable":
    case "video_not_deletable":
    case "video_not_found":
      return false;
    default:
      return unhandled(code);
  }
}

/** Whether a video has reached its end: its stream of events ends after it. */
export function isTerminal(status: VideoStatus): boolean {
  switch (status) {
    case "completed":
    case "failed":
    case "canceled":
      return true;
    case "pending":
    case "queued":
    case "processing":
    case "canceling":
      return false;
    default:
      return unhandled(status);
  }
}
