"""Small asyncio helpers shared by the feed and the simulator (plain Python, no Cython)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

S = TypeVar("S", bound="Service")
T = TypeVar("T")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancels every task, then waits for each to finish; their errors are not re-raised
    (this runs on shutdown, where the tasks' own handlers have already reported them)."""
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        # Python 3.11's wait_for can swallow a cancellation that lands as its inner await
        # completes (a poll loop then runs on): cancel again until the task is done.
        while not t.done():
            await asyncio.wait({t}, timeout=0.1)
            t.cancel()
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """``await event.wait()`` for at most ``timeout`` seconds; True if the event is set.

    Not ``asyncio.wait_for``: before Python 3.12, a cancellation that arrives as the event is
    set is lost (wait_for returns the result instead), and a ``while True`` loop around it
    then never ends, hanging whoever cancelled it (``fastfeed demo`` at exit, 1 run in 3).
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


class Backoff:
    """Capped exponential backoff with jitter, shared by every retry loop in fastfeed.

    The k-th delay of a run of failures is drawn from ``[d/2, d]`` with
    ``d = min(cap, initial * 2**(k-1))``.  Half of each step is kept as a floor: a full-jitter
    draw from ``[0, d]`` can come out near zero several times in a row, which against an
    exchange's connection-attempt limit is a hot loop in disguise.  ``reset()`` after a success.
    """

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None):
        if initial <= 0 or cap < initial:
            raise ValueError(f"backoff needs 0 < initial <= cap, got {initial}, {cap}")
        self.initial, self.cap = initial, cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        """Counts one more failure and returns the delay before the next attempt."""
        self.failures += 1
        d = min(self.cap, self.initial * 2.0 ** min(self.failures - 1, 62))
        return d * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class Service:
    """``async with``: ``start()`` on entry, ``close()`` on exit (cancellation included)."""

    async def start(self) -> None:  # pragma: no cover - every service defines it
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def __aenter__(self: S) -> S:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when available, else asyncio."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
