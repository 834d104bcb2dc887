-- The database gauges of /metrics (app/ops/metrics.py), computed at most once per
-- METRICS_REFRESH_S for the whole deployment: whichever replica is scraped once the row is
-- stale locks it (SKIP LOCKED: the others read the row as it is) and rewrites it; every other
-- scrape reads this one row instead of aggregating `videos` and the ledger itself. The row is
-- made by the first scrape, not here: a database nobody has used stays empty (and so needs no
-- backup before `vidgen migrate deploy`).

-- CreateTable
CREATE TABLE "metricsSnapshot" (
    "key" TEXT NOT NULL,
    "gauges" JSONB NOT NULL,
    "refreshedAt" TIMESTAMPTZ NOT NULL,

    CONSTRAINT "metricsSnapshot_pkey" PRIMARY KEY ("key")
);

