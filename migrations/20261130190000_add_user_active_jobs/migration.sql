-- AddColumn: a user's unfinished jobs, kept on the user's row so that a create can check the
-- active-job cap in the same conditional UPDATE that charges it (one statement, no count:
-- PostgreSQL re-checks an UPDATE's condition on the newest row version after a lock wait,
-- which a count over "videos" would not be). The create statement adds one; every statement
-- that moves a job into a terminal state takes one off in the same UPDATE of the user's row
-- as any refund (app/videos/repository.py). `vidgen audit` checks it against the jobs.
ALTER TABLE "users" ADD COLUMN "activeJobs" INTEGER NOT NULL DEFAULT 0;

-- Backfill: the jobs that are unfinished now. Runs in the migration's transaction, under the
-- ALTER's lock on "users" (every request's key lookup waits for it: seconds at most for a
-- few hundred thousand users). A release without the counter that still runs during a
-- rollout creates and finishes jobs without keeping it: run `vidgen recount-active-jobs`
-- once the rollout (or a rollback) is complete; `vidgen audit` reports any drift.
UPDATE "users" u SET "activeJobs" = a."jobs"
FROM (
    SELECT "userId", count(*) AS "jobs" FROM "videos"
    WHERE "status" IN ('pending', 'queued', 'processing', 'canceling')
    GROUP BY "userId"
) a
WHERE u."id" = a."userId";
