-- Per-user rate limits shared by every replica: one token bucket per (action, user). A row
-- holds the tokens left when it was last touched; refills are computed from the time since.
CREATE TABLE "rateLimits" (
    "key" TEXT NOT NULL,
    "tokens" DOUBLE PRECISION NOT NULL,
    "updatedAt" TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT "rateLimits_pkey" PRIMARY KEY ("key")
);
