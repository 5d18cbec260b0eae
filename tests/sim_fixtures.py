"""Helpers shared by the simulator tests (no pytest-asyncio: tests call :func:`run`)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable

import aiohttp
from picows import WSListener, WSMsgType, ws_connect


def run(coro, timeout: float = 30.0):
    """Run ``coro`` on a fresh event loop with an overall timeout."""

    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


async def until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.003)


class Collector(WSListener):
    """picows client listener that keeps everything it receives."""

    def __init__(self):
        super().__init__()
        self.frames: list = []  # (msg_type, fin, payload)
        self.msgs: list[bytes] = []  # complete text messages (continuations joined)
        self.arrived: list[float] = []  # time.monotonic() when each of msgs completed
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.close: tuple | None = None
        self.disconnected = asyncio.Event()
        self._buf: bytearray | None = None
        self.transport = None

    def on_ws_connected(self, transport):
        self.transport = transport

    def on_ws_frame(self, transport, frame):
        mt = frame.msg_type
        payload = frame.get_payload_as_bytes()
        self.frames.append((mt, frame.fin, payload))
        if mt == WSMsgType.TEXT:
            if frame.fin:
                self.msgs.append(payload)
                self.arrived.append(time.monotonic())
            else:
                self._buf = bytearray(payload)
        elif mt == WSMsgType.CONTINUATION:
            self._buf += payload
            if frame.fin:
                self.msgs.append(bytes(self._buf))
                self.arrived.append(time.monotonic())
                self._buf = None
        elif mt == WSMsgType.PING:
            self.pings.append(payload)
        elif mt == WSMsgType.PONG:
            self.pongs.append(payload)
        elif mt == WSMsgType.CLOSE:
            self.close = (frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.disconnected.set()

    def json(self) -> list:
        return [json.loads(m) for m in self.msgs]

    def data(self) -> list:
        """Market payloads (envelopes unwrapped), control replies left out."""
        out = []
        for m in self.json():
            if "stream" in m and "data" in m:
                out.append(m["data"])
            elif "result" not in m and "code" not in m and "error" not in m:
                out.append(m)
        return out

    def replies(self) -> list:
        return [m for m in self.json() if "result" in m or "code" in m or "error" in m]

    def send_json(self, obj) -> None:
        self.transport.send(WSMsgType.TEXT, json.dumps(obj).encode())

    async def wait_msgs(self, n: int, timeout: float = 5.0) -> None:
        await until(lambda: len(self.msgs) >= n, timeout, f"{n} messages (have {len(self.msgs)})")

    async def wait_all(self, timeout: float = 5.0) -> None:
        """Until every text message the server sent on this connection has arrived: what a
        test then asserts about the whole stream does not depend on how fast it came."""

        def sent():
            return sum(v for k, v in self.server_conn.sent.items() if k != "ping")

        await until(
            lambda: len(self.msgs) >= sent(),
            timeout,
            f"all messages (have {len(self.msgs)} of {sent()})",
        )

    async def wait_reply(self, req_id, timeout: float = 5.0) -> dict:
        def find():
            for m in self.replies():
                if m.get("id") == req_id:
                    return m
            return None

        await until(lambda: find() is not None, timeout, f"reply {req_id}")
        return find()


async def connect(
    sim,
    path: str,
    *,
    auto_pong: bool = True,
    max_frame_size: int = 10 << 20,
    ssl_context: ssl.SSLContext | None = None,
) -> Collector:
    """Open a picows client to ``sim.ws_url + path`` and wait until the server registered it."""
    before = len(sim.all_connections)
    _tr, lis = await ws_connect(
        Collector,
        sim.ws_url + path,
        ssl_context=ssl_context or sim.client_ssl_context(),
        enable_auto_pong=auto_pong,
        max_frame_size=max_frame_size,
    )
    assert lis is not None, "handshake closed without an answer"
    await until(lambda: len(sim.all_connections) > before, 5, "server-side connection")
    lis.server_conn = sim.all_connections[-1]
    return lis


async def rest_get(sim, path: str, headers=None):
    """GET ``sim.rest_url + path`` -> (status, headers, parsed JSON body)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.rest_url + path, ssl=sim.client_ssl_context(), headers=headers) as r:
            body = await r.read()
            try:
                return r.status, r.headers, json.loads(body)
            except ValueError:
                return r.status, r.headers, body


async def raw_handshake(sim, path: str):
    """TLS + a hand-written upgrade request; returns (reader, writer, status line)."""
    host, port = sim.ws_url[len("wss://") :].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=sim.client_ssl_context(), server_hostname=host
    )
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head.split(b"\r\n", 1)[0].decode()


def apply_levels(book: dict, levels) -> None:
    for p, q in levels:
        if float(q) == 0.0:
            book.pop(p, None)
        else:
            book[p] = q


def sorted_book(bids: dict, asks: dict):
    from decimal import Decimal

    b = sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)
    a = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))
    return b, a
