-- Each status a video went through, and who moved it there: the job's history for support
-- and debugging ("was it ever processing?", "did the webhook or the poller finish it?").

-- CreateTable
CREATE TABLE "videoEvents" (
    "id" BIGINT GENERATED ALWAYS AS IDENTITY,
    "videoId" UUID NOT NULL,
    "status" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),

    CONSTRAINT "videoEvents_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "videoEvents_source_check"
        CHECK ("source" IN ('api', 'dispatch', 'webhook', 'poll', 'deadline'))
);

-- AddForeignKey
ALTER TABLE "videoEvents" ADD CONSTRAINT "videoEvents_videoId_fkey"
    FOREIGN KEY ("videoId") REFERENCES "videos"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- CreateIndex
CREATE INDEX "videoEvents_videoId_id_idx" ON "videoEvents"("videoId", "id");

-- CreateIndex: what the reconciler scans, kept small: only jobs that are not finished.
CREATE INDEX "videos_active_nextAttemptAt_idx" ON "videos"("status", "nextAttemptAt")
    WHERE "status" IN ('pending', 'queued', 'processing');
