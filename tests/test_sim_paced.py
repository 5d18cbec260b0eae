"""Simulator: the paced mode's shape on the wire, seen by a raw TLS client that splits the
stream into TLS records itself (ssl.MemoryBIO), so "one message per write" is checked on the
records, not inferred from what a WebSocket library hands over.  No timing is asserted: the
rate and the send lag are the benchmark's to report (benchmarks/bench_e2e.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
from urllib.parse import urlsplit

import pytest
from sim_fixtures import run

from fastfeed.sim import ExchangeSimulator
from fastfeed.sim.config import add_arguments, config_from_args

PATH = "/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms&timeUnit=MICROSECOND"


class RecordClient:
    """A WebSocket client over a TLS stack fed one TLS record at a time: ``records`` holds
    the plaintext of each record that carried application data, in order."""

    def __init__(self, url: str, ca: str):
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=self.host)
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.raw = bytearray()
        self.records: list[bytes] = []

    async def _flush(self, loop) -> None:
        if self.outgoing.pending:
            await loop.sock_sendall(self.sock, self.outgoing.read())

    async def connect(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, (self.host, self.port))
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush(loop)
                self.incoming.write(await loop.sock_recv(self.sock, 65536))
        await self._flush(loop)
        self.tls.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await self._flush(loop)

    def _plaintext(self) -> bytes:
        out = bytearray()
        while True:
            try:
                out += self.tls.read(1 << 20)
            except ssl.SSLWantReadError:
                return bytes(out)

    async def read_records(self, frames: int, timeout: float = 20.0) -> None:
        """Read until ``frames`` records with WebSocket frames arrived (after the 101)."""
        loop = asyncio.get_running_loop()
        # Whatever came with the handshake (TLS 1.3 session tickets) carries no data.
        assert self._plaintext() == b""
        while sum(1 for r in self.records if not r.startswith(b"HTTP/")) < frames:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), timeout)
            assert data, "server closed"
            self.raw += data
            while len(self.raw) >= 5:
                size = int.from_bytes(self.raw[3:5], "big")
                if len(self.raw) < 5 + size:
                    break
                rec, self.raw = bytes(self.raw[: 5 + size]), self.raw[5 + size :]
                assert rec[0] == 23, f"TLS record of type {rec[0]} after the handshake"
                self.incoming.write(rec)
                text = self._plaintext()
                if text:  # empty: a post-handshake message (session ticket)
                    self.records.append(text)

    def close(self) -> None:
        self.sock.close()


def one_frame(record: bytes) -> tuple[int, bytes]:
    """The single unmasked, unfragmented frame a record must hold -> (opcode, payload)."""
    assert record[0] & 0x80, "fragmented frame"
    n = record[1] & 0x7F
    head = 2
    if n == 126:
        n, head = int.from_bytes(record[2:4], "big"), 4
    elif n == 127:
        n, head = int.from_bytes(record[2:10], "big"), 10
    assert not record[1] & 0x80, "server frames are not masked"
    assert len(record) == head + n, f"record holds {len(record)} bytes, one frame {head + n}"
    return record[0] & 0x0F, record[head:]


@pytest.mark.parametrize("fine", [False, True], ids=["coarse", "fine"])
def test_paced_sends_each_message_in_its_own_tls_record(fine):
    n = 300

    async def main():
        async with ExchangeSimulator(symbols=["BTCUSDT"], clock="manual") as sim:
            c = RecordClient(sim.ws_url, sim.ca_file)
            try:
                await c.connect(PATH)
                (conn,) = await sim.wait_connections(1)
                sock = conn.transport.underlying_transport.get_extra_info("socket")
                # Nagle would merge small writes into one segment behind an unacked one.
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                res = await sim.paced(5000, n, conn, fine=fine)
                await c.read_records(n)
            finally:
                c.close()
            return res, c.records

    res, records = run(main(), 60)
    assert records[0].startswith(b"HTTP/1.1 101")
    frames = [one_frame(r) for r in records[1:]]
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert len(texts) == n == res.messages
    assert res.fine is fine and res.max_burst >= 1
    if fine:
        assert res.max_burst == 1  # one message per event-loop turn
    data = [m["data"] for m in texts]
    stamps = [d["sendNs"] for d in data]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))  # sent in order, each on its own
    assert all(d["E"] == d["sendNs"] // 1000 for d in data)
    agg = [d for d in data if d["e"] == "aggTrade"]
    depth = [d for d in data if d["e"] == "depthUpdate"]
    assert len(agg) == len(depth) == n // 2
    assert all(b["a"] == a["a"] + 1 for a, b in zip(agg, agg[1:]))
    assert all(b["U"] == a["u"] + 1 for a, b in zip(depth, depth[1:]))


def test_paced_fine_is_a_command_line_flag():
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args(["--paced", "100", "--paced-fine"])).paced_fine is True
    assert config_from_args(p.parse_args(["--paced", "100"])).paced_fine is False
