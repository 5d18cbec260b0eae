"""Simulator: exchange rules (keepalive, control-message limit, stream cap, attempts, lifetime)
and the REST API (limits, weights, 429/418, exchangeInfo, time)."""

import asyncio
import json

import pytest
from picows import WSInvalidStatusError, ws_connect
from sim_fixtures import Collector, connect, rest_get, run, until

from fastfeed.sim import ExchangeSimulator, SimConfig

BASE = dict(symbols=["BTCUSDT"], clock="manual", seed=3)


def test_market_defaults():
    spot = SimConfig().resolved()
    usdm = SimConfig(market="usdm").resolved()
    assert (spot.ping_interval, spot.pong_timeout, spot.control_limit, spot.max_streams) == (
        20.0,
        60.0,
        5,
        1024,
    )
    assert (usdm.ping_interval, usdm.pong_timeout, usdm.control_limit) == (180.0, 600.0, 10)
    assert spot.lifetime == 86400.0 and spot.attempt_limit == 300 and spot.attempt_window == 300.0


def test_no_pong_disconnects_without_close_frame():
    async def main():
        async with ExchangeSimulator(**BASE, ping_interval=0.05, pong_timeout=0.2) as sim:
            c = await connect(sim, "/ws", auto_pong=False)
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.pings and all(p for p in c.pings)  # pings carry a payload
            assert c.close is None
            assert c.server_conn.close_reason == "pong timeout"

    run(main())


def test_unsolicited_pongs_do_not_keep_alive():
    async def main():
        async with ExchangeSimulator(
            **BASE, ping_interval=0.05, pong_timeout=0.25, control_limit=1000
        ) as sim:
            c = await connect(sim, "/ws", auto_pong=False)
            while not c.disconnected.is_set():
                c.transport.send_pong(b"")
                await asyncio.sleep(0.02)
            assert c.server_conn.close_reason == "pong timeout"
            assert c.server_conn.received["PONG"] >= 3

    run(main())


def test_echoed_pongs_keep_alive():
    async def main():
        # pong_timeout well above the ping interval: a stalled test process must not look
        # like a client that stopped answering
        async with ExchangeSimulator(
            **BASE, ping_interval=0.05, pong_timeout=1.0, control_limit=1000
        ) as sim:
            c = await connect(sim, "/ws")  # picows answers pings with their payload
            await until(lambda: c.server_conn.sent["ping"] >= 10, 5, "10 pings")
            await until(lambda: c.server_conn.received["PONG"] >= 10, 5, "10 pongs")
            assert not c.disconnected.is_set()

    run(main())


def test_client_ping_answered_with_payload():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            c = await connect(sim, "/ws")
            c.transport.send_ping(b"abc")
            await until(lambda: c.pongs == [b"abc"])

    run(main())


def test_too_many_control_messages_closes_1008():
    async def main():
        async with ExchangeSimulator(**BASE, control_window=0.3) as sim:
            ok = await connect(sim, "/ws")
            for i in range(5):  # exactly at the limit: fine
                ok.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            await until(lambda: len(ok.replies()) == 5)
            await asyncio.sleep(0.35)
            ok.transport.send_ping(b"x")
            await until(lambda: ok.pongs == [b"x"])
            assert ok.close is None

            bad = await connect(sim, "/ws")
            for _ in range(3):
                bad.transport.send_ping(b"p")
            for i in range(3):  # pings, pongs and text all count: 6 > 5
                bad.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            await asyncio.wait_for(bad.disconnected.wait(), 3)
            assert bad.close == (1008, b"Too many requests")

    run(main())


def test_stream_cap():
    async def main():
        async with ExchangeSimulator(
            symbols=["BTCUSDT", "ETHUSDT"], clock="manual", max_streams=3
        ) as sim:
            with pytest.raises(WSInvalidStatusError) as ei:
                await ws_connect(
                    Collector,
                    sim.ws_url + "/stream?streams=btcusdt@trade/btcusdt@aggTrade/"
                    "btcusdt@depth/btcusdt@depth5",
                    ssl_context=sim.client_ssl_context(),
                )
            assert ei.value.response.status == 400
            c = await connect(sim, "/ws/btcusdt@trade/btcusdt@aggTrade")
            c.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1})
            await c.wait_reply(1)
            c.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@depth"], "id": 2})
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.close == (1008, b"Too many streams")

    run(main())


def test_connection_attempt_limit():
    async def main():
        async with ExchangeSimulator(**BASE, attempt_limit=2, attempt_window=60) as sim:
            await connect(sim, "/ws")
            await connect(sim, "/ws")
            with pytest.raises(WSInvalidStatusError) as ei:
                await ws_connect(
                    Collector, sim.ws_url + "/ws", ssl_context=sim.client_ssl_context()
                )
            assert ei.value.response.status == 429
            assert int(ei.value.response.headers["Retry-After"]) > 0

    run(main())


@pytest.mark.parametrize("path,stream", [("/ws", None), ("/stream", "!serverShutdown")])
def test_lifetime_with_server_shutdown(path, stream):
    async def main():
        async with ExchangeSimulator(**BASE, lifetime=0.4, shutdown_notice=0.2) as sim:
            c = await connect(sim, path)
            await asyncio.wait_for(c.disconnected.wait(), 3)
            assert c.close[0] == 1001
            (msg,) = c.json()
            if stream:
                assert msg["stream"] == stream
                msg = msg["data"]
            assert msg["e"] == "serverShutdown" and isinstance(msg["E"], int)

    run(main())


# ----------------------------------------------------------------------------- REST


def test_rest_depth_limits_and_weights():
    async def main():
        async with ExchangeSimulator(**BASE, levels=5200) as sim:
            st, h, body = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT")
            assert st == 200 and len(body["bids"]) == 100 and len(body["asks"]) == 100
            assert h["X-MBX-USED-WEIGHT-1M"] == "5"
            assert body["lastUpdateId"] == sim.last_update_id("BTCUSDT")
            assert body["bids"] == [
                list(x) for x in sim.book_at("BTCUSDT", body["lastUpdateId"], 100)[0]
            ]
            st, h, body = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=500")
            assert h["X-MBX-USED-WEIGHT-1M"] == "30"
            st, h, body = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=99999")
            assert st == 200 and len(body["bids"]) == 5000  # truncated to 5000
            assert h["X-MBX-USED-WEIGHT-1M"] == "280"
            st, _, body = await rest_get(sim, "/api/v3/depth?symbol=NOPE")
            assert st == 400 and body["code"] == -1121
            st, _, body = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=abc")
            assert st == 400 and body["code"] == -1100
            assert set(body) == {"code", "msg"}

    run(main())


def test_rest_429_then_418():
    async def main():
        async with ExchangeSimulator(**BASE, weight_limit=20, ban_after=2, ban_seconds=30) as sim:
            for i in range(4):
                st, h, _ = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=5")
                assert st == 200 and h["X-MBX-USED-WEIGHT-1M"] == str(5 * (i + 1))
            statuses = []
            for _ in range(3):
                st, h, body = await rest_get(sim, "/api/v3/depth?symbol=BTCUSDT&limit=5")
                statuses.append(st)
                assert body["code"] == -1003
                if st == 429:
                    # windows are laid from the server's start: the first ends ~60 s after it
                    assert 50 <= int(h["Retry-After"]) <= 60, h["Retry-After"]
            assert statuses == [429, 429, 418]
            st, h, _ = await rest_get(sim, "/api/v3/time")
            assert st == 418 and int(h["Retry-After"]) > 20

    run(main())


def test_rest_exchange_info_and_time():
    async def main():
        async with ExchangeSimulator(symbols=["BTCUSDT", "ETHUSDT"], clock="manual") as sim:
            st, h, info = await rest_get(sim, "/api/v3/exchangeInfo")
            assert st == 200 and h["X-MBX-USED-WEIGHT-1M"] == "20"
            sym = {s["symbol"]: s for s in info["symbols"]}
            assert set(sym) == {"BTCUSDT", "ETHUSDT"}
            f = {x["filterType"]: x for x in sym["BTCUSDT"]["filters"]}
            assert f["PRICE_FILTER"]["tickSize"] == "0.01000000"
            assert f["LOT_SIZE"]["stepSize"] == "0.00001000"
            st, _, t = await rest_get(sim, "/api/v3/time")
            assert st == 200 and abs(t["serverTime"] - sim.now_ms()) < 60_000
            st, _, _ = await rest_get(sim, "/fapi/v1/depth?symbol=BTCUSDT")
            assert st == 404  # spot simulator serves /api/v3 only

    run(main())


def test_rest_usdm_depth():
    async def main():
        async with ExchangeSimulator(market="usdm", symbols=["BTCUSDT"], clock="manual") as sim:
            st, h, body = await rest_get(sim, "/fapi/v1/depth?symbol=BTCUSDT")
            assert st == 200 and h["X-MBX-USED-WEIGHT-1M"] == "10"
            # Default limit 500: the whole (200-level) book.
            assert (
                body["bids"] == [list(x) for x in sim.snapshot("BTCUSDT")[1]]
                and len(body["bids"]) == 200
            )
            assert list(body)[:3] == ["lastUpdateId", "E", "T"]
            assert body["bids"][0][0].count(".") == 1 and len(body["bids"][0][0].split(".")[1]) == 2
            st, h, body = await rest_get(sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=5")
            assert st == 200 and len(body["asks"]) == 5 and h["X-MBX-USED-WEIGHT-1M"] == "12"
            st, _, body = await rest_get(sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=7")
            assert st == 400
            st, _, info = await rest_get(sim, "/fapi/v1/exchangeInfo")
            f = {x["filterType"]: x for x in info["symbols"][0]["filters"]}
            assert (
                f["PRICE_FILTER"]["tickSize"] == "0.10"
                and info["symbols"][0]["pricePrecision"] == 2
            )

    run(main())


def test_rest_time_json_is_compact():
    async def main():
        async with ExchangeSimulator(**BASE) as sim:
            st, _, body = await rest_get(sim, "/api/v3/time")
            assert st == 200
            assert list(body) == ["serverTime"]
            assert json.dumps(body)

    run(main())
