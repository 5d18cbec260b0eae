"""Simulator: the rule peaks and violations that prove a client kept the limits
(``sim.limits()``), the URL length limit, mixed symbol activity, and one connection delayed
with jitter."""

import asyncio
import json

import pytest
from picows import WSInvalidStatusError, ws_connect
from sim_fixtures import Collector, connect, run, until

from fastfeed.sim import ExchangeSimulator
from fastfeed.sim.market import Market


def test_limits_record_peaks_and_every_violation():
    async def main():
        async with ExchangeSimulator(
            symbols=["BTCUSDT", "ETHUSDT"], clock="manual", seed=1, max_streams=3, attempt_limit=4
        ) as sim:
            ok = await connect(sim, "/ws/btcusdt@trade/btcusdt@aggTrade")
            for i in range(4):
                ok.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            await until(lambda: len(ok.replies()) == 4)
            lim = sim.limits()
            assert lim["violations"] == []
            assert lim["peaks"]["streams"] == 2 and lim["peaks"]["control"] == 4
            assert lim["peaks"]["attempts"] == 1
            assert lim["limits"] == {
                "streams": 3,
                "control": 5,
                "attempts": 4,
                "url": 8004,
                "weight": 6000,
            }

            bad = await connect(sim, "/ws/btcusdt@trade")
            bad.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@depth", "x"], "id": 1})
            await until(lambda: bad.replies())  # an invalid stream: an error, no violation
            bad.send_json(
                {"method": "SUBSCRIBE", "params": ["ethusdt@depth", "ethusdt@trade", "e"], "id": 2}
            )
            await until(lambda: len(bad.replies()) == 2)  # still an error reply ("e")
            three = ["ethusdt@depth", "ethusdt@trade", "ethusdt@aggTrade"]
            bad.send_json({"method": "SUBSCRIBE", "params": three, "id": 3})
            await asyncio.wait_for(bad.disconnected.wait(), 3)
            for _ in range(6):
                ok.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 9})
            await asyncio.wait_for(ok.disconnected.wait(), 3)
            await connect(sim, "/ws")
            await connect(sim, "/ws")
            with pytest.raises(WSInvalidStatusError):
                await ws_connect(
                    Collector, sim.ws_url + "/ws", ssl_context=sim.client_ssl_context()
                )
            rules = [v[1] for v in sim.limits()["violations"]]
            # (frames already read after the closing one count too)
            assert list(dict.fromkeys(rules)) == ["streams", "control", "attempts"], rules
            _t, _rule, conn, value, limit = sim.limits()["violations"][0]
            assert (conn, value, limit) == (bad.server_conn.id, 4, 3)

    run(main())


def test_a_request_target_over_8004_characters_is_refused():
    async def main():
        syms = [f"S{i:03d}USDT" for i in range(300)]
        async with ExchangeSimulator(symbols=syms, clock="manual", levels=5) as sim:
            names = [f"{s.lower()}@{k}" for s in syms for k in ("aggTrade", "depth@100ms")]
            target = "/stream?streams=" + "/".join(names)
            assert len(target) > 8004
            with pytest.raises(WSInvalidStatusError) as ei:
                await ws_connect(
                    Collector, sim.ws_url + target, ssl_context=sim.client_ssl_context()
                )
            assert ei.value.response.status == 414
            fits = "/stream?streams=" + "/".join(names[:400])
            assert len(fits) <= 8004
            c = await connect(sim, fits)
            assert len(c.server_conn.subscriptions()) == 400
            assert sim.limits()["peaks"]["url"] == len(target)
            assert [v[1] for v in sim.limits()["violations"]] == ["url"]

    run(main())


def test_activity_mixes_the_symbols_rates_deterministically():
    syms = [f"S{i:03d}USDT" for i in range(50)]
    uniform = Market(syms, seed=4, rate=10.0, levels=5)
    mixed = Market(syms, seed=4, rate=10.0, levels=5, activity=1.2)
    shares = sorted((mixed.activity_share(s) for s in syms), reverse=True)
    assert abs(sum(shares) - 1.0) < 1e-9
    assert shares[0] > 20 * shares[-1]  # a Zipf law: the busiest far above the quietest
    assert uniform.activity_share(syms[0]) == pytest.approx(1 / 50)
    counts = {s: 0 for s in syms}
    for ev in mixed.advance_to(int(20e6)):
        if ev.kind == "aggTrade":
            counts[ev.symbol] += 1
    busiest = max(syms, key=mixed.activity_share)
    quietest = min(syms, key=mixed.activity_share)
    assert counts[busiest] > 5 * max(1, counts[quietest])
    again = Market(syms, seed=4, rate=10.0, levels=5, activity=1.2)
    assert [e.render() for e in again.advance_to(int(2e6))] == [
        e.render()
        for e in Market(syms, seed=4, rate=10.0, levels=5, activity=1.2).advance_to(int(2e6))
    ]


def test_one_connection_delayed_with_jitter_keeps_its_order():
    async def main():
        async with ExchangeSimulator(
            symbols=["BTCUSDT"], clock="manual", seed=2, rate=400.0
        ) as sim:
            fast = await connect(sim, "/ws/btcusdt@aggTrade")
            slow = await connect(sim, "/ws/btcusdt@aggTrade")
            assert slow.server_conn.peer is not None and slow.server_conn.peer[1] > 0
            sim.faults.slow(0.0, conn=slow.server_conn, jitter=0.02)
            for _ in range(20):
                sim.advance(0.01)
                await asyncio.sleep(0.002)
            await fast.wait_all()
            await slow.wait_all()
            ids = [json.loads(m)["a"] for m in slow.msgs]
            assert ids == sorted(ids) and ids == [json.loads(m)["a"] for m in fast.msgs]
            # the slow leg's copies came later, by up to the jitter
            lag = [s - f for s, f in zip(slow.arrived, fast.arrived)]
            assert max(lag) > 0.002
            sim.faults.slow(0.0, conn=slow.server_conn)  # off again
            assert slow.server_conn.jitter == 0.0

    run(main())
