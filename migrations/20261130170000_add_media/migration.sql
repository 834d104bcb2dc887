-- Our own copies of outputs and uploads (app/media/). "videoUrl" keeps what it always held,
-- Fal's URL of the output; a video is `completed` only once "mediaKey" holds our copy.
ALTER TABLE "videos"
    ADD COLUMN "mediaKey" TEXT,
    ADD COLUMN "posterKey" TEXT,
    ADD COLUMN "mediaContentType" TEXT,
    ADD COLUMN "mediaSizeBytes" BIGINT,
    ADD COLUMN "mediaSha256" TEXT,
    ADD COLUMN "mediaWidth" INTEGER,
    ADD COLUMN "mediaHeight" INTEGER,
    ADD COLUMN "mediaDurationS" DOUBLE PRECISION,
    ADD COLUMN "mediaDeletedAt" TIMESTAMPTZ,
    ADD COLUMN "copyAttempts" INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN "startedAt" TIMESTAMPTZ;

-- Outputs waiting for their copy: the finaliser's queue.
CREATE INDEX "videos_awaiting_copy_idx" ON "videos" ("nextAttemptAt")
    WHERE "videoUrl" IS NOT NULL AND "mediaKey" IS NULL
      AND "status" IN ('processing', 'canceling');
-- Retention: completed videos whose media is still kept, oldest first.
CREATE INDEX "videos_media_kept_idx" ON "videos" ("completedAt")
    WHERE "mediaKey" IS NOT NULL AND "mediaDeletedAt" IS NULL;

-- Images uploaded for image-to-video, stored by us; `upload:<id>` is their image_url.
CREATE TABLE "uploads" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "userId" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "contentType" TEXT NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "sha256" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT "uploads_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "uploads_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id")
        ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "uploads_key_key" ON "uploads" ("key");
CREATE INDEX "uploads_userId_createdAt_idx" ON "uploads" ("userId", "createdAt");

-- A job completes when our copy of its output is published: that step has its own source.
ALTER TABLE "videoEvents" DROP CONSTRAINT "videoEvents_source_check";
ALTER TABLE "videoEvents" ADD CONSTRAINT "videoEvents_source_check"
    CHECK ("source" IN ('api', 'dispatch', 'webhook', 'poll', 'deadline', 'copy'));
