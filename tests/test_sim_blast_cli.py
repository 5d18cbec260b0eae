"""Simulator: blast and paced modes, and the ``fastfeed sim`` command line."""

import json
import signal
import subprocess
import sys

import pytest
import websockets
from children import child_env
from sim_fixtures import connect, run, until

from fastfeed.sim import ExchangeSimulator


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_blast_is_a_valid_in_sequence_feed(market):
    async def main():
        prefix = "/public" if market == "usdm" else ""
        async with ExchangeSimulator(
            market=market, symbols=["BTCUSDT"], clock="manual", seed=1
        ) as sim:
            c = await connect(sim, prefix + "/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms")
            n = 5000
            res = await sim.blast(n)
            assert res.messages == n and res.bytes > n * 50
            await until(lambda: len(c.msgs) == n, 20)
            data = c.json()
            agg = [m["data"] for m in data if m["stream"] == "btcusdt@aggTrade"]
            depth = [m["data"] for m in data if m["stream"] == "btcusdt@depth@100ms"]
            assert len(agg) == len(depth) == n // 2
            for a, b in zip(agg, agg[1:]):
                assert b["a"] == a["a"] + 1 and b["f"] == a["l"] + 1
            for a, b in zip(depth, depth[1:]):
                assert b["e"] == "depthUpdate"
                assert (b["U"] == a["u"] + 1) if market == "spot" else (b["pu"] == a["u"])
            assert c.server_conn.sent["blast"] == n

    run(main(), 60)


def test_paced_messages_carry_send_time():
    async def main():
        async with ExchangeSimulator(symbols=["BTCUSDT"], clock="manual") as sim:
            c = await connect(sim, "/ws?timeUnit=MICROSECOND")
            res = await sim.paced(2000, 200)
            assert res.messages == 200
            await until(lambda: len(c.msgs) == 200)
            msgs = c.json()
            for m in msgs:
                assert m["e"] in ("aggTrade", "depthUpdate")
                assert list(m)[-1] == "sendNs"
                assert m["E"] == m["sendNs"] // 1000
            stamps = [m["sendNs"] for m in msgs]
            assert stamps == sorted(stamps)
            assert res.lag_p50 <= res.lag_max

    run(main())


def test_cli_prints_urls_and_stops_on_sigterm(tmp_path):
    # Runs whichever fastfeed this interpreter imports (the installed one in CI), from a
    # directory where the source tree cannot shadow it.
    env = child_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastfeed.cli",
            "sim",
            "--port",
            "0",
            "--symbols",
            "BTCUSDT",
            "--rate",
            "200",
            "--interval-scale",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"ws", "rest", "ca"}
        assert info["ws"].startswith("wss://127.0.0.1:") and info["rest"].startswith(
            "https://127.0.0.1:"
        )

        async def client():
            import ssl

            ctx = ssl.create_default_context(cafile=info["ca"])
            async with websockets.connect(info["ws"] + "/ws/btcusdt@depth@100ms", ssl=ctx) as ws:
                return json.loads(await ws.recv())

        msg = run(client(), 20)
        assert msg["e"] == "depthUpdate"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
