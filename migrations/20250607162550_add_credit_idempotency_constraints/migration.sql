-- The credit ledger. Append-only; users."creditBalance" moves in the same transaction
-- as each row, under the user's row lock.

-- RenameColumn
ALTER TABLE "users" RENAME COLUMN "purchased_credit_packs" TO "purchasedCreditPacks";
ALTER TABLE "users" RENAME CONSTRAINT "users_purchased_credit_packs_nonnegative"
    TO "users_purchasedCreditPacks_nonnegative";

-- CreateTable
CREATE TABLE "creditTransactions" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "userId" UUID NOT NULL,
    "amount" INTEGER NOT NULL,
    "balanceAfter" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "idempotencyKey" TEXT NOT NULL,
    "reason" TEXT,
    "period" TEXT,
    "videoId" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "creditTransactions_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "creditTransactions_amount_nonzero" CHECK ("amount" <> 0),
    CONSTRAINT "creditTransactions_balanceAfter_nonnegative" CHECK ("balanceAfter" >= 0),
    CONSTRAINT "creditTransactions_kind_check"
        CHECK ("kind" IN ('purchase', 'grant', 'roll', 'debit', 'refund', 'adjustment')),
    -- Money only flows one way per kind; only adjustments may go either way.
    CONSTRAINT "creditTransactions_amount_sign"
        CHECK (("kind" = 'debit' AND "amount" < 0)
            OR ("kind" IN ('purchase', 'grant', 'roll', 'refund') AND "amount" > 0)
            OR "kind" = 'adjustment'),
    -- A roll is "the credits for one period": it must say which period.
    CONSTRAINT "creditTransactions_period_iff_roll" CHECK (("kind" = 'roll') = ("period" IS NOT NULL)),
    CONSTRAINT "creditTransactions_idempotencyKey_key" UNIQUE ("idempotencyKey")
);

-- AddForeignKey: RESTRICT, never CASCADE: deleting a user must not delete money history.
ALTER TABLE "creditTransactions" ADD CONSTRAINT "creditTransactions_userId_fkey"
    FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- CreateIndex: a user's ledger, newest first (keyset pagination on ("createdAt", "id")).
CREATE INDEX "creditTransactions_userId_createdAt_idx"
    ON "creditTransactions"("userId", "createdAt", "id");

-- CreateIndex: at most one credit roll per user and period, enforced by the database.
CREATE UNIQUE INDEX "creditTransactions_userId_period_roll_key"
    ON "creditTransactions"("userId", "period") WHERE "kind" = 'roll';
