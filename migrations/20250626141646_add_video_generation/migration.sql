-- Video generation jobs. The pending row is the outbox the dispatcher reads:
-- the charge and the row commit together, Fal is called after commit.

-- CreateTable
CREATE TABLE "videos" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "userId" UUID NOT NULL,
    "modelId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "prompt" TEXT NOT NULL,
    "negativePrompt" TEXT,
    "imageUrl" TEXT,
    "duration" INTEGER NOT NULL,
    "aspectRatio" TEXT,
    "resolution" TEXT,
    "seed" BIGINT,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "falRequestId" TEXT,
    "queuePosition" INTEGER,
    "videoUrl" TEXT,
    "videoMetadata" JSONB,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "creditsCharged" INTEGER NOT NULL,
    "idempotencyKey" TEXT NOT NULL,
    "requestFingerprint" TEXT NOT NULL,
    "submitAttempts" INTEGER NOT NULL DEFAULT 0,
    "pollAttempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" TIMESTAMPTZ(3),
    "lastEventAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completedAt" TIMESTAMPTZ(3),

    CONSTRAINT "videos_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "videos_kind_check" CHECK ("kind" IN ('text-to-video', 'image-to-video')),
    CONSTRAINT "videos_status_check"
        CHECK ("status" IN ('pending', 'queued', 'processing', 'completed', 'failed', 'canceled')),
    CONSTRAINT "videos_creditsCharged_nonnegative" CHECK ("creditsCharged" >= 0),
    CONSTRAINT "videos_duration_positive" CHECK ("duration" > 0),
    CONSTRAINT "videos_image_iff_image_to_video"
        CHECK (("kind" = 'image-to-video') = ("imageUrl" IS NOT NULL)),
    CONSTRAINT "videos_attempts_nonnegative" CHECK ("submitAttempts" >= 0 AND "pollAttempts" >= 0)
);

-- CreateIndex
CREATE UNIQUE INDEX "videos_falRequestId_key" ON "videos"("falRequestId");

-- CreateIndex: an Idempotency-Key names at most one video per user.
CREATE UNIQUE INDEX "videos_userId_idempotencyKey_key" ON "videos"("userId", "idempotencyKey");

-- CreateIndex: a user's videos, newest first (keyset pagination on ("createdAt", "id")).
CREATE INDEX "videos_userId_createdAt_idx" ON "videos"("userId", "createdAt", "id");

-- CreateIndex
CREATE INDEX "videos_status_idx" ON "videos"("status");

-- AddForeignKey
ALTER TABLE "videos" ADD CONSTRAINT "videos_userId_fkey"
    FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "videos" ADD CONSTRAINT "videos_modelId_fkey"
    FOREIGN KEY ("modelId") REFERENCES "models"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "creditTransactions" ADD CONSTRAINT "creditTransactions_videoId_fkey"
    FOREIGN KEY ("videoId") REFERENCES "videos"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- CreateIndex: at most one debit and one refund per video.
CREATE UNIQUE INDEX "creditTransactions_videoId_kind_key"
    ON "creditTransactions"("videoId", "kind") WHERE "kind" IN ('debit', 'refund');
