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
