"""The reconciler: in every replica, a loop that makes sure no job is stuck
(docs/architecture.md, "The life of a video").

Each pass: fail jobs past their deadline, submit pending ones (new, or due a retry), and poll
Fal about queued / processing jobs whose webhook is late. Rows are leased with
`FOR UPDATE SKIP LOCKED`, so replicas share the work without doing any of it twice.
"""

import asyncio
import contextlib
import logging
from collections import Counter

from app.core.metrics import Metrics
from app.videos.dispatch import Dispatcher

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, dispatcher: Dispatcher, interval_s: float, metrics: Metrics) -> None:
        self.dispatcher = dispatcher
        self.interval_s = interval_s
        self.metrics = metrics
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Counter[str]:
        done: Counter[str] = Counter()
        done["failed_overdue"] = await self.dispatcher.fail_overdue()
        done["submitted"] = await self.dispatcher.submit()
        done["polled"] = await self.dispatcher.poll_stale()
        for action, count in done.items():
            self.metrics.reconciler_actions.labels(action).inc(count)
        return done

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:  # one bad pass (database blip, Fal outage) must not end the loop
                logger.exception("reconciler pass failed")
            with contextlib.suppress(TimeoutError):  # the interval passed without a stop
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reconciler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            # gather: a loop already cancelled by the server's shutdown is not an error here.
            await asyncio.gather(self._task, return_exceptions=True)
