-- Initial schema: users and the video-model catalog.
-- gen_random_uuid() is core since PostgreSQL 13; on older servers run: CREATE EXTENSION pgcrypto;

-- CreateTable
CREATE TABLE "users" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "email" TEXT NOT NULL,
    "apiKeyHash" TEXT,
    "isAdmin" BOOLEAN NOT NULL DEFAULT false,
    "creditBalance" INTEGER NOT NULL DEFAULT 0,
    "purchased_credit_packs" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "users_creditBalance_nonnegative" CHECK ("creditBalance" >= 0),
    CONSTRAINT "users_purchased_credit_packs_nonnegative" CHECK ("purchased_credit_packs" >= 0)
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- CreateIndex
CREATE UNIQUE INDEX "users_apiKeyHash_key" ON "users"("apiKeyHash");

-- CreateTable
CREATE TABLE "models" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "slug" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "falEndpoint" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "creditsPerSecond" INTEGER NOT NULL,
    "durations" INTEGER[] NOT NULL,
    "durationFormat" TEXT NOT NULL DEFAULT '{n}',
    "aspectRatios" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    "resolutions" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    "maxPromptLength" INTEGER NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "models_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "models_kind_check" CHECK ("kind" IN ('text-to-video', 'image-to-video')),
    CONSTRAINT "models_creditsPerSecond_positive" CHECK ("creditsPerSecond" > 0),
    CONSTRAINT "models_durations_nonempty" CHECK (cardinality("durations") > 0),
    CONSTRAINT "models_maxPromptLength_positive" CHECK ("maxPromptLength" > 0)
);

-- CreateIndex
CREATE UNIQUE INDEX "models_slug_key" ON "models"("slug");
