"""Simulator: every scriptable fault, seen from a client."""

import asyncio
import json
import ssl
import time

import pytest
from picows import WSInvalidStatusError, WSProtocolError, ws_connect
from sim_fixtures import Collector, connect, raw_handshake, rest_get, run, until

from fastfeed.sim import ExchangeSimulator

BASE = dict(symbols=["BTCUSDT"], clock="manual", seed=9, rate=500)
DEPTH = "/ws/btcusdt@depth@100ms"


def test_tcp_reset():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            reader, writer, status = await raw_handshake(sim, "/ws")
            assert status == "HTTP/1.1 101 Switching Protocols"
            await until(lambda: sim.connections)
            sim.faults.reset()
            with pytest.raises(ConnectionResetError):
                while await reader.read(1024):
                    pass
            writer.close()

    run(main())


def test_close_with_code():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/ws")
            sim.faults.close(4003, "maintenance", conn=c.server_conn.id)
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.close == (4003, b"maintenance")

    run(main())


def test_ignore_client_pings_and_mute():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/ws/btcusdt@aggTrade")
            sim.faults.ignore_pings()
            c.transport.send_ping(b"1")
            await until(lambda: c.server_conn.received["PING"] == 1)
            sim.faults.ignore_pings(False)
            c.transport.send_ping(b"2")
            await until(lambda: c.pongs)
            assert c.pongs == [b"2"]
            sim.advance(0.5)
            await until(lambda: c.msgs)
            sim.faults.mute()
            n = len(c.msgs)
            sim.advance(1.0)
            c.transport.send_ping(b"3")
            await until(lambda: c.pongs == [b"2", b"3"])  # pings answered while muted
            assert len(c.msgs) == n
            sim.faults.mute(False)
            sim.advance(0.5)
            await until(lambda: len(c.msgs) > n)

    run(main())


def _depth_seq(c):
    return [(d["U"], d["u"]) for d in c.data() if d.get("e") == "depthUpdate"]


@pytest.mark.parametrize("kind", ["gap", "duplicate", "stale"])
def test_depth_faults(kind):
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, DEPTH)
            sim.advance(0.45)
            await until(lambda: len(c.msgs) >= 4)
            getattr(sim.faults, "depth_" + kind)()
            sim.advance(0.5)
            await until(lambda: len(c.msgs) == c.server_conn.sent["depthUpdate"] >= 8)
            seq = _depth_seq(c)
            breaks = [(a, b) for a, b in zip(seq, seq[1:]) if b[0] != a[1] + 1]
            assert len(breaks) == (1 if kind == "gap" else 2 if kind == "stale" else 1), breaks
            a, b = breaks[0]
            if kind == "gap":
                assert b[0] > a[1] + 1
            elif kind == "duplicate":
                assert a == b
            else:
                assert b[1] < a[1]  # stale: u below the book id

    run(main())


def test_stale_snapshot():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            sim.advance(1.0)
            c = await connect(sim, DEPTH)
            sim.advance(0.2)
            await until(lambda: c.msgs)
            first_U = json.loads(c.msgs[0])["U"]
            sim.faults.stale_snapshot()
            _, _, old = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            _, _, fresh = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            assert old["lastUpdateId"] < first_U - 1 <= fresh["lastUpdateId"]
            assert [tuple(x) for x in old["bids"]] == sim.book_at("BTCUSDT", old["lastUpdateId"])[0]

    run(main())


def test_malformed_and_fragmented_frames():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/ws/btcusdt@aggTrade")
            sim.faults.malformed()
            sim.faults.fragment(count=2, parts=3)
            sim.advance(0.5)
            await until(lambda: len(c.msgs) >= 4)
            with pytest.raises(json.JSONDecodeError):
                json.loads(c.msgs[0])
            for m in c.msgs[1:]:
                assert json.loads(m)["e"] == "aggTrade"
            types = [(t.name, fin) for t, fin, _ in c.frames[1:7]]
            assert types == [("TEXT", 0), ("CONTINUATION", 0), ("CONTINUATION", 1)] * 2
            assert all(fin for _t, fin, _p in c.frames[7:])

    run(main())


def test_oversize_frame_trips_client_limit():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            tr, _ = await ws_connect(
                Collector,
                sim.ws_url + "/ws",
                ssl_context=sim.client_ssl_context(),
                max_frame_size=64 * 1024,
            )
            await until(lambda: sim.connections)
            sim.faults.oversize(100_000)
            with pytest.raises(WSProtocolError):
                await asyncio.wait_for(tr.wait_disconnected(), 3)
            assert sim.all_connections[0].sent["oversize"] == 1
            big = await connect(sim, "/ws")
            sim.faults.oversize(100_000, conn=big.server_conn)
            await until(lambda: big.msgs)
            assert len(big.msgs[0]) == 100_000 and json.loads(big.msgs[0])["e"] == "oversize"

    run(main())


@pytest.mark.parametrize("status", [404, 429, 503])
def test_handshake_status(status):
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            sim.faults.handshake(status, count=1)
            with pytest.raises(WSInvalidStatusError) as ei:
                await ws_connect(
                    Collector, sim.ws_url + "/ws", ssl_context=sim.client_ssl_context()
                )
            assert ei.value.response.status == status
            await connect(sim, "/ws")  # count=1: the next one succeeds

    run(main())


def test_untrusted_certificate_switch():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            sim.faults.untrusted_cert()
            with pytest.raises(ssl.SSLCertVerificationError):
                await ws_connect(
                    Collector, sim.ws_url + "/ws", ssl_context=sim.client_ssl_context()
                )
            with pytest.raises(Exception) as ei:
                await rest_get(sim, "/api/v3/time")
            assert "certificate verify failed" in str(ei.value)
            sim.faults.untrusted_cert(False)
            await connect(sim, "/ws")

    run(main())


def test_slow_server_delays_writes_in_order():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/ws/btcusdt@trade")
            sim.faults.slow(0.4)
            t0 = time.monotonic()
            sim.advance(0.3)
            sent = c.server_conn.sent["trade"]
            assert sent > 0
            await until(lambda: len(c.msgs) == sent)
            assert min(c.arrived) >= t0 + 0.4  # nothing arrived before the delay had passed
            ids = [json.loads(m)["t"] for m in c.msgs]
            assert ids == sorted(ids)

    run(main())


def test_lifetime_shortened_at_runtime():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/stream")
            sim.faults.lifetime(0.3, notice=0.1)
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.json()[-1] == {"stream": "!serverShutdown", "data": c.json()[-1]["data"]}
            assert c.close[0] == 1001

    run(main())


def test_cli_fault_names():
    async def main():
        async with ExchangeSimulator(**BASE, faults=[(0.0, "handshake", "503")]) as sim:
            await asyncio.sleep(0.05)
            with pytest.raises(WSInvalidStatusError):
                await ws_connect(
                    Collector, sim.ws_url + "/ws", ssl_context=sim.client_ssl_context()
                )
            sim.faults.apply("clear")
            c = await connect(sim, "/ws")
            sim.faults.apply("close", "4000")
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.close[0] == 4000
            with pytest.raises(ValueError):
                sim.faults.apply("nosuch")

    run(main())
