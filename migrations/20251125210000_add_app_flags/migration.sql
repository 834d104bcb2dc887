-- Flags every replica reads (maintenance mode first): the database is the one place all
-- replicas share, so a flag set here is honoured everywhere within the refresh interval.

-- CreateTable
CREATE TABLE "appFlags" (
    "key" TEXT NOT NULL,
    "enabled" BOOLEAN NOT NULL,
    "reason" TEXT,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "appFlags_pkey" PRIMARY KEY ("key")
);
