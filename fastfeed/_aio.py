"""Small asyncio helpers shared by the feed and the simulator (plain Python, no Cython)."""
import asyncio
from typing import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancels every task, then waits for each to finish; their errors are not re-raised
    (this runs on shutdown, where the tasks' own handlers have already reported them)."""
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass


class Service:
    """``async with``: ``start()`` on entry, ``close()`` on exit (cancellation included)."""

    async def start(self) -> None:  # pragma: no cover - every service defines it
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
