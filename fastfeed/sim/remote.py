"""The simulator in a child process, driven through a pipe.

A memory test of the client must not count the simulator's own buffers (pre-encoded blasts,
TLS send buffers, records of closed connections), so the simulator runs in a process of its
own (``multiprocessing`` spawn) and the test drives it with a few commands::

    async with RemoteSimulator(symbols=["BTCUSDT"], seed=1, rate=1) as sim:
        feed = BinanceFeed(..., url=sim.ws_url, ssl=sim.client_ssl_context())
        await sim.prepare_blast(1_000_000)     # encoded once, in the child
        await sim.blast(1_000_000)             # to the first open connection
        await sim.call("faults.reset")         # any Faults method by name

Every call waits for the child's reply while the caller's event loop keeps running (the
client must go on reading while the simulator writes).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from .blast import BlastResult

if TYPE_CHECKING:  # pragma: no cover
    from .config import ResolvedConfig


def _child(conn: Connection, overrides: dict[str, Any]) -> None:
    try:
        import uvloop

        uvloop.run(_serve(conn, overrides))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(conn, overrides))


async def _serve(conn: Connection, overrides: dict[str, Any]) -> None:
    from . import ExchangeSimulator

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent went away
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(("stop", ()))

    async with ExchangeSimulator(**overrides) as sim:
        conn.send({"ws": sim.ws_url, "rest": sim.rest_url, "ca": sim.ca_file, "config": sim.config})
        loop.add_reader(conn.fileno(), readable)
        prepared = None
        while True:
            cmd, args = await inbox.get()
            try:
                if cmd == "stop":
                    conn.send(("ok", None))
                    return
                if cmd == "prepare_blast":
                    prepared = sim.prepare_blast(*args)
                    result: Any = prepared[1]
                elif cmd == "blast":
                    result = await sim.blast(args[0], prepared=prepared)
                elif cmd == "forget_closed":
                    result = sim.forget_closed()
                elif cmd == "connections":
                    result = len(sim.connections)
                elif cmd == "peers":  # which client port each open connection serves
                    result = [(c.id, c.peer[1] if c.peer else None) for c in sim.connections]
                elif cmd == "limits":
                    result = sim.limits()
                elif cmd.startswith("faults."):
                    result = getattr(sim.faults, cmd.split(".", 1)[1])(*args)
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                conn.send(("ok", result))
            except Exception as e:
                conn.send(("error", repr(e)))


class RemoteSimulator:
    """:class:`~fastfeed.sim.ExchangeSimulator` in a child process (same keyword arguments).

    Attributes after start: ``ws_url``, ``rest_url``, ``ca_file``, ``config`` (the child's
    resolved :class:`~fastfeed.sim.SimConfig`), ``pid``."""

    def __init__(self, start_timeout: float = 60.0, **overrides: Any):
        self._overrides = overrides
        self._start_timeout = start_timeout
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self.ws_url = self.rest_url = self.ca_file = ""
        self.config: ResolvedConfig | None = None

    async def __aenter__(self) -> RemoteSimulator:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing shared
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child, args=(child, self._overrides), daemon=True, name="fastfeed-sim"
        )
        self._proc.start()
        child.close()
        info = await self._reply(self._start_timeout)
        self.ws_url, self.rest_url, self.ca_file = info["ws"], info["rest"], info["ca"]
        self.config = info["config"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._proc is not None and self._proc.is_alive():
                await self.call("stop", timeout=10)
        finally:
            if self._proc is not None:
                self._proc.join(5)
                if self._proc.is_alive():
                    self._proc.kill()
                    self._proc.join()
            if self._conn is not None:
                self._conn.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client ``SSLContext`` that trusts the simulator's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def _pipe(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("RemoteSimulator is not started (use async with)")
        return self._conn

    async def _reply(self, timeout: float) -> Any:
        end = time.monotonic() + timeout
        while not self._pipe().poll():
            if time.monotonic() > end:
                raise TimeoutError("simulator process did not answer")
            if self._proc is not None and not self._proc.is_alive():
                raise RuntimeError(f"simulator process exited ({self._proc.exitcode})")
            await asyncio.sleep(0.005)
        return self._pipe().recv()

    async def call(self, cmd: str, *args: Any, timeout: float = 300.0) -> Any:
        """Run ``cmd`` in the child and return its result (raises on an error there)."""
        self._pipe().send((cmd, args))
        status, result = await self._reply(timeout)
        if status != "ok":
            raise RuntimeError(f"simulator: {cmd} failed: {result}")
        return result

    async def prepare_blast(self, n: int) -> int:
        """Encode ``n`` blast frames in the child; returns their size in bytes."""
        return await self.call("prepare_blast", n)

    async def blast(self, n: int) -> BlastResult:
        """Write the prepared ``n`` frames to the first open connection; returns the
        :class:`~fastfeed.sim.BlastResult` once they are written."""
        return await self.call("blast", n)
