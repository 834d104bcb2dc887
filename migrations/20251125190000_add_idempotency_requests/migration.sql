-- HTTP Idempotency-Key records (DESIGN §4) and a ledger insertion order.

-- CreateTable: one row per (caller scope, key), holding the response to replay.
-- A request claims its key by inserting this row first, in the same transaction as its
-- work: a concurrent request with the same key waits on the unique index until the first
-- commits (then replays it) or rolls back (then runs as the first).
CREATE TABLE "idempotencyRequests" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "scope" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "responseStatus" INTEGER,
    "responseBody" TEXT, -- the exact bytes sent, so a replay is byte-identical
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "idempotencyRequests_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "idempotencyRequests_key_length" CHECK (char_length("key") BETWEEN 1 AND 255)
);

-- CreateIndex
CREATE UNIQUE INDEX "idempotencyRequests_scope_key_key" ON "idempotencyRequests"("scope", "key");

-- AddColumn: the order rows were applied in. "createdAt" is the transaction's start time, so
-- two movements for one user serialized by its row lock can carry timestamps in the other
-- order; the audit's running-sum check needs the true order.
ALTER TABLE "creditTransactions" ADD COLUMN "sequence" BIGINT GENERATED ALWAYS AS IDENTITY;

-- CreateIndex
CREATE UNIQUE INDEX "creditTransactions_userId_sequence_key"
    ON "creditTransactions"("userId", "sequence");
