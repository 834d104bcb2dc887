-- Each model's facts as Fal publishes them (request fields, types, defaults, the pricing rule):
-- written by `vidgen models sync` from app/catalog/catalog.json. A row without one was synced
-- by an older release and is not sold until the next sync.
ALTER TABLE "models" ADD COLUMN "spec" JSONB;

-- Every option a video was created with, normalised (given or defaulted): what was priced and
-- what is sent to Fal. NULL on rows created before this migration (their columns say it all).
ALTER TABLE "videos" ADD COLUMN "options" JSONB;

-- `canceling`: a cancel reached a job Fal is already running. Fal only signals the model app,
-- so the job ends `canceled` (refunded) unless Fal delivers the video anyway (`completed`).
ALTER TABLE "videos" DROP CONSTRAINT "videos_status_check";
ALTER TABLE "videos" ADD CONSTRAINT "videos_status_check"
    CHECK ("status" IN ('pending', 'queued', 'processing', 'canceling', 'completed', 'failed', 'canceled'));

-- The partial indexes over unfinished jobs include the new active status.
DROP INDEX "videos_userId_active_idx";
CREATE INDEX "videos_userId_active_idx" ON "videos"("userId")
    WHERE "status" IN ('canceling', 'pending', 'processing', 'queued');
DROP INDEX "videos_active_nextAttemptAt_idx";
CREATE INDEX "videos_active_nextAttemptAt_idx" ON "videos"("status", "nextAttemptAt")
    WHERE "status" IN ('canceling', 'pending', 'processing', 'queued');
