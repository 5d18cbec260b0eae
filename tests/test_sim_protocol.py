"""Simulator: paths, envelopes, control messages and their errors, third-party client."""

import asyncio
import json

import pytest
import websockets
from picows import WSInvalidStatusError, WSMsgType, ws_connect
from sim_fixtures import Collector, connect, run, until

from fastfeed.sim import ExchangeSimulator
from fastfeed.sim.control import handle_control
from fastfeed.sim.wsserver import HandshakeReject, parse_target

FAST = dict(symbols=["BTCUSDT", "ETHUSDT"], clock="manual", seed=5, rate=400)


def test_raw_path_single_and_multi_stream():
    async def main():
        async with ExchangeSimulator(**FAST) as sim:
            c1 = await connect(sim, "/ws/btcusdt@aggTrade")
            c2 = await connect(sim, "/ws/btcusdt@trade/ethusdt@bookTicker")
            sim.advance(1.0)
            await c1.wait_all()
            await c2.wait_all()
            assert len(c1.msgs) >= 5 and len(c2.msgs) >= 5
            d1 = c1.json()
            assert all(m["e"] == "aggTrade" and m["s"] == "BTCUSDT" for m in d1)
            kinds = {(m.get("e"), m["s"]) for m in c2.json()}
            assert kinds == {("trade", "BTCUSDT"), (None, "ETHUSDT")}  # spot bookTicker: no "e"
            assert c1.server_conn.sent["aggTrade"] == len(c1.msgs)

    run(main())


def test_combined_envelope_and_time_unit():
    async def main():
        async with ExchangeSimulator(**FAST) as sim:
            c = await connect(
                sim, "/stream?streams=btcusdt@aggTrade/ethusdt@depth@100ms&timeUnit=MICROSECOND"
            )
            m = await connect(sim, "/stream?streams=btcusdt@aggTrade&timeUnit=millisecond")
            sim.advance(1.0)
            await c.wait_all()
            await m.wait_all()
            assert len(c.msgs) >= 10 and len(m.msgs) >= 3
            streams = set()
            for msg in c.json():
                assert set(msg) == {"stream", "data"}
                streams.add(msg["stream"])
                assert msg["data"]["E"] >= 10**15  # 16 digits: microseconds
            assert streams == {"btcusdt@aggTrade", "ethusdt@depth@100ms"}
            assert all(10**12 <= x["data"]["E"] < 10**13 for x in m.json())
            # Same event, both units: the ms value is the µs value / 1000.
            a_us = {
                x["data"]["a"]: x["data"]["T"] for x in c.json() if x["stream"].endswith("aggTrade")
            }
            a_ms = {x["data"]["a"]: x["data"]["T"] for x in m.json()}
            common = set(a_us) & set(a_ms)
            assert common and all(a_us[k] // 1000 == a_ms[k] for k in common)

    run(main())


def test_subscribe_list_unsubscribe_and_properties():
    async def main():
        async with ExchangeSimulator(**FAST) as sim:
            c = await connect(sim, "/ws")
            c.send_json(
                {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1}
            )
            assert await c.wait_reply(1) == {"result": None, "id": 1}
            c.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "abc-1"})
            assert await c.wait_reply("abc-1") == {
                "result": ["btcusdt@aggTrade", "btcusdt@depth"],
                "id": "abc-1",
            }
            c.send_json({"method": "GET_PROPERTY", "params": ["combined"], "id": 2})
            assert (await c.wait_reply(2))["result"] is False
            await asyncio.sleep(1.05)  # stay under 5 control messages per second
            c.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 3})
            await c.wait_reply(3)
            c.send_json({"method": "SET_PROPERTY", "params": ["combined", True], "id": 4})
            assert await c.wait_reply(4) == {"result": None, "id": 4}
            c.send_json({"method": "LIST_SUBSCRIPTIONS", "id": None})
            await until(lambda: any(m.get("result") == ["btcusdt@aggTrade"] for m in c.replies()))
            n = len(c.msgs)
            sim.advance(1.0)
            await c.wait_msgs(n + 3)
            data = [json.loads(x) for x in c.msgs[n:]]
            assert all(d["stream"] == "btcusdt@aggTrade" for d in data)  # envelope now, no depth

    run(main())


class _State:
    def __init__(self):
        self.combined = False
        self.subs = []

    def valid_stream(self, name):
        return name in ("btcusdt@aggTrade", "btcusdt@depth")

    def subscriptions(self):
        return list(self.subs)

    def subscribe(self, names):
        self.subs += names
        return True

    def unsubscribe(self, names):
        pass


@pytest.mark.parametrize(
    "req,expected",
    [
        (
            b'{"method":"SET_PROPERTY","params":["foo",true],"id":5}',
            {"code": 0, "msg": "Unknown property", "id": 5},
        ),
        (
            b'{"method":"GET_PROPERTY","params":["foo"],"id":6}',
            {"code": 0, "msg": "Unknown property", "id": 6},
        ),
        (
            b'{"method":"SET_PROPERTY","params":["combined","yes"],"id":7}',
            {"code": 1, "msg": "Invalid value type: expected Boolean", "id": 7},
        ),
        (
            b'{"method":"SET_PROPERTY","params":[1,true],"id":8}',
            {"code": 2, "msg": "Invalid request: property name must be a string", "id": 8},
        ),
        (
            b'{"method":"LIST_SUBSCRIPTIONS"}',
            {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
        ),
        (
            b'{"method":"LIST_SUBSCRIPTIONS","id":1.5}',
            {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
        ),
        (
            b'{"method":"GET_PROPERTY","params":["combined","x"],"id":9}',
            {"code": 2, "msg": "Invalid request: too many parameters", "id": 9},
        ),
        (
            b'{"method":"SUBSCRIBE","params":["nosuch@aggTrade"],"id":10}',
            {"code": 2, "msg": "Invalid request: invalid stream", "id": 10},
        ),
        (
            b'{"params":[],"id":11}',
            {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 21"},
        ),
        (
            b'{"method":"FOO","id":1}',
            {
                "code": 2,
                "msg": "Invalid request: unknown variant `FOO`, expected one of "
                "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                "`GET_PROPERTY` at line 1 column 15",
            },
        ),
        (b'{"method":', {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 11"}),
    ],
)
def test_control_errors(req, expected):
    assert json.loads(handle_control(req, _State())) == expected


def test_nested_error_shape_and_errors_over_the_wire():
    async def main():
        async with ExchangeSimulator(**FAST, error_shape="nested") as sim:
            c = await connect(sim, "/ws")
            c.transport.send(WSMsgType.TEXT, b"{not json")
            c.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 7})
            await until(lambda: len(c.msgs) >= 2)
            first, second = c.json()[:2]
            assert first["error"]["code"] == 3 and first["error"]["msg"].startswith("Invalid JSON")
            assert second == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": 7,
            }
            assert c.server_conn.sent["error"] == 2

    run(main())


def test_bad_paths_are_rejected_at_handshake():
    async def main():
        async with ExchangeSimulator(**FAST) as sim:
            for path, status in [
                ("/nope", 404),
                ("/ws/btcusdt@bogus", 400),
                ("/ws?timeUnit=NANO", 400),
                ("/ws/BTCUSDT@aggTrade", 400),
            ]:
                with pytest.raises(WSInvalidStatusError) as ei:
                    await ws_connect(
                        Collector, sim.ws_url + path, ssl_context=sim.client_ssl_context()
                    )
                assert ei.value.response.status == status, path
            # URL-encoded paths are accepted.
            c = await connect(sim, "/ws/btcusdt%40aggTrade")
            assert c.server_conn.subscriptions() == ["btcusdt@aggTrade"]

    run(main())


def test_parse_target_usdm_routes():
    assert parse_target("/public/ws/btcusdt@depth", "usdm") == (
        "public",
        False,
        ["btcusdt@depth"],
        False,
    )
    assert parse_target("/market/stream?streams=a/b", "usdm") == ("market", True, ["a", "b"], False)
    assert parse_target("/ws", "usdm")[0] == "public"
    with pytest.raises(HandshakeReject):
        parse_target("/public/ws/x", "spot")


def test_usdm_routing_aggtrade_absent_on_public():
    async def main():
        async with ExchangeSimulator(
            market="usdm", symbols=["BTCUSDT"], clock="manual", seed=2, rate=400
        ) as sim:
            pub = await connect(
                sim,
                "/public/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@bookTicker",
            )
            mkt = await connect(sim, "/market/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms")
            unrouted = await connect(sim, "/ws/btcusdt@aggTrade/btcusdt@bookTicker")
            sim.advance(1.0)
            for c in (pub, mkt, unrouted):
                await c.wait_all()
            assert len(pub.msgs) >= 20 and len(mkt.msgs) >= 20 and len(unrouted.msgs) >= 5
            assert {m["stream"] for m in pub.json()} == {
                "btcusdt@depth@100ms",
                "btcusdt@bookTicker",
            }
            assert {m["stream"] for m in mkt.json()} == {"btcusdt@aggTrade"}
            assert {m["e"] for m in unrouted.json()} == {"bookTicker"}
            # Still listed although never delivered there.
            assert "btcusdt@aggTrade" in pub.server_conn.subscriptions()
            agg = [m["data"] for m in mkt.json()]
            assert all("nq" in a and "M" not in a for a in agg)

    run(main())


def test_third_party_websockets_client():
    async def main():
        async with ExchangeSimulator(
            symbols=["BTCUSDT"],
            seed=1,
            rate=500,
            interval_scale=0.1,
            ping_interval=0.2,
            pong_timeout=1.0,
            # pongs count as control messages (5/s on spot): this
            # test is not about that limit
            control_limit=1000,
        ) as sim:
            url = sim.ws_url + "/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade"
            async with websockets.connect(
                url, ssl=sim.client_ssl_context(), ping_interval=None
            ) as ws:
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 42}))
                got, reply = [], None
                while len(got) < 30 or reply is None:
                    m = json.loads(await ws.recv())
                    if "id" in m:
                        reply = m
                    else:
                        got.append(m)
                assert reply == {"result": ["btcusdt@depth@100ms", "btcusdt@aggTrade"], "id": 42}
                depth = [m["data"] for m in got if m["stream"] == "btcusdt@depth@100ms"]
                for a, b in zip(depth, depth[1:]):
                    assert b["U"] == a["u"] + 1
                # websockets answers server pings itself: keep reading through several ping
                # periods (reading, so that its receive queue never applies backpressure).
                conn = sim.connections[0]
                while conn.received["PONG"] < 3:
                    await ws.recv()
                assert conn.sent["ping"] >= 3 and not conn.closed.done()
                pong = await ws.ping(b"mine")
                while not pong.done():
                    await ws.recv()
            await until(lambda: not sim.connections)

    run(main())
