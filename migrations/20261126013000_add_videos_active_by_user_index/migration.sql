-- CreateIndex: the active-job cap counts a user's unfinished jobs on every create. Without
-- this the count walks the user's whole history through "videos_userId_createdAt_idx" (or
-- every active job of every user through the status index): creates slowed down as a user's
-- history grew. Partial, so it holds only the few rows that are still running.
CREATE INDEX "videos_userId_active_idx" ON "videos"("userId")
    WHERE "status" IN ('pending', 'queued', 'processing');
