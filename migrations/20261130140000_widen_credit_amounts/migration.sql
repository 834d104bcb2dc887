-- Money columns become BIGINT: with INTEGER, enough grants pushed a balance toward 2^31 - 1,
-- and then the next grant or any refund failed with an overflow (a refund that cannot be
-- written leaves its job stuck). Grants are also capped in the service (MAX_BALANCE), so a
-- balance stays far below BIGINT's range and no movement or refund can fail arithmetically.
-- Prisma reads BIGINT columns as BigInt.
ALTER TABLE "users" ALTER COLUMN "creditBalance" TYPE BIGINT;
ALTER TABLE "creditTransactions" ALTER COLUMN "amount" TYPE BIGINT;
ALTER TABLE "creditTransactions" ALTER COLUMN "balanceAfter" TYPE BIGINT;
ALTER TABLE "videos" ALTER COLUMN "creditsCharged" TYPE BIGINT;
