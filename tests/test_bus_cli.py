"""The bus on the command line: ``fastfeed subscribe`` against a real nats-server, and the
``--nats`` options a feed command takes from ``fastfeed.bus.cli``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from children import CHILD_CWD, child_env
from nats_fixtures import DecoderSource, nats_server, trade  # noqa: F401 - fixture
from sim_fixtures import run

from fastfeed.bus import cli as bus_cli
from fastfeed.cli import UsageError

pytest.importorskip("nats")


def fastfeed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastfeed.cli", *args],
        env=child_env(),
        cwd=CHILD_CWD,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bus_cli.add_arguments(p)
    return p.parse_args(argv)


def test_subscribe_command_reads_the_history(nats_server):  # noqa: F811
    async def publish():
        src = DecoderSource()
        pub = await bus_cli.start_publisher(src, parse("--nats", nats_server.url))
        assert pub is not None and await pub.wait_connected(10)
        for i in range(1, 31):
            src.read(trade(i), trade(i, "ETHUSDT"))
        await pub.close()
        assert pub.stats()["acked_batches"] == 60

    run(publish(), 30)
    r = fastfeed(
        "subscribe",
        nats_server.url,
        "fastfeed.spot.trades.*",
        "--start",
        "history",
        "--seconds",
        "1.5",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["written"]["trades"] == 60 and st["lost"] == 0 and st["messages"] == 60

    r = fastfeed("subscribe", nats_server.url, "fastfeed.spot.>", "--seconds", "1", "--start", "1")
    assert r.returncode == 0, r.stderr
    assert "trades +" in r.stdout  # a line per interval


@pytest.mark.parametrize(
    "argv, says",
    [
        (["subscribe", "http://127.0.0.1:4222", "x"], "must start with one of nats://"),
        (["subscribe", "nats://127.0.0.1:4222", "x", "--start", "0"], "starts at 1"),
        (["subscribe", "nats://127.0.0.1:4222", "x", "--start", "latest"], "is not new, history"),
    ],
)
def test_subscribe_usage_errors(argv, says):
    r = fastfeed(*argv)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_subscribe_without_a_server_is_one_line():
    from nats_fixtures import free_port

    r = fastfeed("subscribe", f"nats://127.0.0.1:{free_port()}", "fastfeed.>", "--seconds", "2")
    assert r.returncode == 1 and "cannot subscribe" in r.stderr and "Traceback" not in r.stderr


def test_nats_options():
    assert run(bus_cli.start_publisher(DecoderSource(), parse())) is None  # no --nats: no bus
    with pytest.raises(SystemExit):
        parse("--nats", "localhost:4222")  # argparse: a usage error
    with pytest.raises(UsageError, match="unknown ring"):
        run(
            bus_cli.start_publisher(
                DecoderSource(), parse("--nats", "nats://x:1", "--nats-rings", "trades,book")
            )
        )
    a = parse("--nats", "nats://a:1,nats://b:2", "--nats-max-mb", "16", "--nats-replicas", "3")
    assert a.nats_max_mb == 16 and a.nats_replicas == 3 and a.nats_subject_prefix == "fastfeed"


def test_serve_sim_publishes_to_nats_and_subscribe_rebuilds(nats_server):  # noqa: F811
    """``fastfeed serve --sim --nats URL`` (no shared memory): the first line names the bus,
    status lines count the rows sent, and ``fastfeed subscribe`` rebuilds them from the
    history with nothing lost."""
    r = fastfeed("serve", "--sim", "--nats", nats_server.url, "--seconds", "3", "--interval", "1")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert lines[0]["nats"] == nats_server.url and "name" not in lines[0]
    sent = lines[-1]["nats_sent_rows"]
    assert sent > 0 and lines[-1]["nats_dropped_batches"] == 0
    r = fastfeed(
        "subscribe",
        nats_server.url,
        "fastfeed.spot.>",
        "--start",
        "history",
        "--seconds",
        "2",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["lost"] == 0 and sum(st["written"].values()) >= sent


def test_serve_needs_an_output():
    r = fastfeed("serve", "--sim", "--seconds", "1")
    assert r.returncode == 2 and "--name NAME and/or --nats URL" in r.stderr, r.stderr
