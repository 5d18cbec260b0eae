"""End-to-end client benchmark: TLS on loopback, the simulator in a separate process.

    PYTHONPATH=. python3 benchmarks/bench_e2e.py                 # blast 1,000,000 x 3, then paced
    PYTHONPATH=. python3 benchmarks/bench_e2e.py --n 300000 --repeat 1 --only fastfeed,counting
    PYTHONPATH=. python3 benchmarks/bench_e2e.py --repeat 0 --paced 1000,5000,20000 \
        --paced-n 20000 --paced-rounds 3 --json paced.json --table paced.md   # paced only

Blast: the stream is the simulator's blast, a combined ``btcusdt@aggTrade`` +
``btcusdt@depth@100ms`` feed alternating the two kinds (depthUpdates carry 3-43 levels, 7.4 on
average; payloads are ~174 B and ~352 B), pre-encoded before the clock starts.

Fairness: every client gets the same bytes over the same TLS (the simulator's self-signed CA,
verification on), from a fresh ``fastfeed sim --blast N`` process, and runs in a process of its
own, so ``process_time`` counts that client alone (not the simulator, not an earlier client's
garbage).  The clock starts once the WebSocket handshake is done and stops at the N-th message.
Clients run in a rotated order each round and the table shows the median of the rounds: the
machine is shared, so compare the ratios, which come from the same run.

Paced (live traffic): a fresh ``fastfeed sim --paced RATE --paced-fine`` sends the same stream
one message per write, each at its own scheduled time, stamped with its send time ``E`` in
microseconds.  Each client (``PACED_CLIENTS``: the native C++ Boost.Beast + simdjson client,
picows + orjson, fastfeed's ``async for`` and ``add_hook`` consumers, and fastfeed's C-level
consumer from ``benchmarks/consumer_clients.py`` when present) runs in a process of its own
and reports, per message, the wall clock when its code has the message minus ``E``, and its
CPU per message after a warm-up.  Per round, per rate, clients run in a rotated order; the
table shows medians of the rounds.  The simulator spins a core at high rates: it competes
with the client for the machine's cores.  ``docs/decisions/0430-paced-benchmark.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import numpy as np

STREAMS = "btcusdt@aggTrade/btcusdt@depth@100ms"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child_env(*extra: str) -> dict:
    """Environment of the simulator and client processes: this checkout's fastfeed when it
    is built in place (a developer's tree), else the installed one (CI installs the package
    and the source tree, without its compiled modules, must not shadow it); then ``extra``
    folders and the caller's own PYTHONPATH."""
    built = any(
        f.startswith("_ring.") and f.endswith((".so", ".pyd"))
        for f in os.listdir(os.path.join(ROOT, "fastfeed", "core"))
    )
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] * built + [*extra, *own]))


def start_sim(extra):
    p = subprocess.Popen(
        [sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT", "--rate", "1"]
        + extra,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,  # not ROOT: ``-m`` puts the working directory first on sys.path
        env=child_env(),
    )
    info = json.loads(p.stdout.readline())
    return p, info


def ctx(info):
    return ssl.create_default_context(cafile=info["ca"])


# ---------------------------------------------------------------------------- clients
# Each returns (wall seconds, CPU seconds, extra dict) for n messages.


async def c_fastfeed(url, info, n):
    from fastfeed import BinanceFeed

    async with BinanceFeed(
        STREAMS.split("/"), url=info["ws"], ssl=ctx(info), stream_timeout=None, start_timeout=30
    ) as feed:
        sink = feed.sink
        t0, c0 = time.perf_counter(), time.process_time()
        # A consumer woken once per socket read; accepted_total is a plain C counter.
        if hasattr(sink, "accepted_total"):
            while sink.accepted_total < n:
                await feed.wait()
        else:  # older builds (before/after comparisons)
            while sum(sink.counters()["accepted"].values()) < n:
                await feed.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = feed.stats()
        return (
            wall,
            cpu,
            {
                "reads": st["reads"],
                "dups": sum(st["duplicates"].values()),
                "gaps": sum(st["gaps"].values()),
            },
        )


async def _picows(url, info, n, factory):
    from picows import ws_connect

    done = asyncio.get_running_loop().create_future()
    tr, _ = await ws_connect(
        lambda: factory(n, done), url, ssl_context=ctx(info), max_frame_size=1 << 20
    )
    t0, c0 = time.perf_counter(), time.process_time()
    await done
    r = time.perf_counter() - t0, time.process_time() - c0, {}
    tr.disconnect()
    return r


def counting_factory(n, done):
    from _native import build_listeners

    lis = build_listeners().CountingListener()
    lis.target = n
    lis.done = lambda: done.set_result(None)
    return lis


def decode_factory(n, done):
    from _native import build_listeners

    lis = build_listeners().DecodeListener()
    lis.target = n
    lis.done = lambda: done.set_result(None)
    return lis


def py_factory(parse):
    from picows import WSListener, WSMsgType

    class L(WSListener):
        def __init__(self, n, done):
            super().__init__()
            self.n, self.done, self.k = n, done, 0

        def on_ws_frame(self, tr, frame):
            if frame.msg_type == WSMsgType.TEXT:
                parse(frame.get_payload_as_bytes())
                self.k += 1
                if self.k == self.n:
                    self.done.set_result(None)

    return L


async def c_aiohttp(url, info, n):
    import aiohttp
    import orjson

    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, ssl=ctx(info), max_msg_size=1 << 20) as ws:
            t0, c0 = time.perf_counter(), time.process_time()
            k = 0
            async for m in ws:
                orjson.loads(m.data)
                k += 1
                if k == n:
                    break
            return time.perf_counter() - t0, time.process_time() - c0, {}


async def c_websockets(url, info, n):
    import websockets

    async with websockets.connect(url, ssl=ctx(info), max_size=1 << 20) as ws:
        t0, c0 = time.perf_counter(), time.process_time()
        k = 0
        async for m in ws:
            json.loads(m)
            k += 1
            if k == n:
                break
        return time.perf_counter() - t0, time.process_time() - c0, {}


def _orjson(u, i, n):
    import orjson

    return _picows(u, i, n, py_factory(orjson.loads))


def _msgspec(u, i, n):
    import msgspec

    return _picows(u, i, n, py_factory(msgspec.json.Decoder().decode))


CLIENTS = {  # name -> (factory, modules it needs)
    "fastfeed": (c_fastfeed, ()),
    "cython counting listener": (lambda u, i, n: _picows(u, i, n, counting_factory), ()),
    # fastfeed's floor: its decoder on the counting listener, without the feed around it
    "cython decode-only listener": (lambda u, i, n: _picows(u, i, n, decode_factory), ()),
    "picows + orjson": (_orjson, ("orjson",)),
    "picows + msgspec": (_msgspec, ("msgspec",)),
    "aiohttp + orjson": (c_aiohttp, ("aiohttp", "orjson")),
    "websockets + json": (c_websockets, ("websockets",)),
}


def importlib_util_find(m):
    import importlib.util

    return importlib.util.find_spec(m)


def available(names):
    import importlib.util

    out = []
    for name in names:
        missing = [m for m in CLIENTS[name][1] if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{name}: {', '.join(missing)} missing, skipped")
        else:
            out.append(name)
    return out


def child(name, info, n):
    """Runs in the client's own process: one client, one connection, n messages."""
    from fastfeed import run

    url = info["ws"] + "/stream?streams=" + STREAMS
    wall, cpu, extra = run(CLIENTS[name][0](url, info, n))
    print(json.dumps(dict(extra, wall=wall, cpu=cpu)), flush=True)


def measure(name, n, timeout, sim_args=None, script=__file__):
    """One client run in a process of its own (``script --child name``) against a fresh
    simulator (``sim_args``, default a blast of ``n``); returns the child's JSON line."""
    sim, info = start_sim(sim_args or ["--blast", str(n)])
    try:
        out = subprocess.run(
            [
                sys.executable,
                os.path.abspath(script),
                "--child",
                name,
                "--info",
                json.dumps(info),
                "--n",
                str(n),
            ],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        sim.terminate()
        sim.wait()


# ---------------------------------------------------------------------------- paced runs
#
# A paced run is live traffic: the simulator sends one message per write at a fixed rate, each
# stamped with its send time E (microseconds), and a client consumes them as its user's code
# would.  Latency = wall clock (CLOCK_REALTIME) at the moment the consumer's code has the
# message, minus E.  CPU = the client process's own CPU over the run, per message
# (docs/decisions/0430-paced-benchmark.md).
#
# PACED_CLIENTS: name -> (client, modules it needs, why_not).  The contract a client keeps:
#
#     async def client(info: dict, n: int) -> np.ndarray
#
# ``info`` is the simulator's first line (``ws``: base URL, ``ca``: its CA file) plus ``url``,
# the full URL of the paced stream (combined aggTrade + depth, ``timeUnit=MICROSECOND``).  The
# client connects, consumes the first ``n`` messages and returns their latencies: float64,
# microseconds, length n, in message order (a depthUpdate counts once, not per level).  It
# runs alone in a process of its own; the harness times its CPU around the call, including
# any process it starts.  ``why_not()`` (or None) returns a reason to skip the client here.
#
# CPU per message is steady-state CPU: the first ``info["warmup"]`` messages (connect, TLS,
# start-up) are left out of it, and so is the work after the last message.  A client marks
# that window by calling ``info["mark"]()`` once when it has consumed message number
# ``info["warmup"]`` and once after message ``n`` (a client that never calls it is timed
# over the whole call, divided by n: start-up included), or reports its own window: calls
# ``info["own_cpu"](cpu_s, msgs)`` (the C-level consumer reads the clock in C) or sets
# ``paced_extra["cpu_s"]`` and ``paced_extra["cpu_msgs"]`` (the C++ client: its rusage).

PacedClient = Callable[[dict, int], Awaitable["np.ndarray"]]
# Not a competitor: the least any sleeping TLS client pays per message (paced_floor).
FLOOR = "floor: C, blocking SSL_read, no parse"


def _no_mark() -> None:
    pass


PACED_TARGET = "/stream?streams=" + STREAMS + "&timeUnit=MICROSECOND"
# Extra figures a client may leave for its run's report (wakes per message, ...).
paced_extra: dict = {}


def _pow2(x: int) -> int:
    return 1 << max(10, int(x - 1).bit_length())


def ff_paced_feed(info: dict, n: int):
    """A feed on the paced stream whose rings keep every row of the run (the latencies are
    computed from the rows afterwards, so the consumer only notes its wakes)."""
    from fastfeed import BinanceFeed

    return BinanceFeed(
        STREAMS.split("/"),
        url=info["ws"],
        ssl=ctx(info),
        time_unit="us",
        stream_timeout=None,
        start_timeout=30,
        trades=_pow2(n),
        depth=_pow2(n * 44),  # depthUpdates of the stream carry at most 43 levels
    )


def message_latencies(wake_ns, wake_trades, wake_depth, trades, depth) -> np.ndarray:
    """Latency (µs) of every message from a fastfeed consumer's wakes: ``wake_ns[k]`` is the
    wall clock of wake k, ``wake_trades[k]`` / ``wake_depth[k]`` how many rows of each ring
    had been read by then.  A row is seen at the first wake that read it; a depthUpdate's
    rows share ``last_id`` and count once.  Returns them in message order (by E, the send
    time); rows no wake read are left out."""
    wake_ns = np.asarray(wake_ns, np.int64)
    first = np.ones(len(depth), bool)
    first[1:] = depth["last_id"][1:] != depth["last_id"][:-1]
    e_parts, lat_parts = [], []
    for rows, index, seen in (
        (trades, np.arange(len(trades)), wake_trades),
        (depth[first], np.nonzero(first)[0], wake_depth),
    ):
        k = np.searchsorted(np.asarray(seen, np.int64), index, side="right")
        ok = k < len(wake_ns)
        e_us = rows["event_time"][ok]
        e_parts.append(e_us)
        lat_parts.append((wake_ns[k[ok]] - e_us * 1000) / 1e3)
    e, lat = np.concatenate(e_parts), np.concatenate(lat_parts)
    return lat[np.argsort(e, kind="stable")]


async def _ff_consume(info: dict, n: int, style: str) -> np.ndarray:
    """fastfeed's consumers: ``hook`` (``feed.add_hook``: a plain function run inside the
    socket read, right after its rows are committed) or ``async for`` (a task woken once per
    read).  Either reads its new rows by cursor, as a strategy does (zero-copy views)."""
    wake_ns: list[int] = []
    wake_tr: list[int] = []
    wake_dp: list[int] = []
    now = time.time_ns
    async with ff_paced_feed(info, n) as feed:
        sink = feed.sink
        trades, depth = feed.trades.reader("oldest"), feed.depth.reader("oldest")

        mark, warm = info.get("mark", _no_mark), info.get("warmup", 0)

        def seen() -> bool:
            nonlocal warm
            wake_ns.append(now())
            trades.read()
            depth.read()
            wake_tr.append(trades.cursor)
            wake_dp.append(depth.cursor)
            if warm and sink.accepted_total >= warm:
                mark()
                warm = 0
            if sink.accepted_total >= n:
                mark()
                return True
            return False

        if style == "hook":
            done = asyncio.get_running_loop().create_future()

            def hook() -> None:
                if seen() and not done.done():
                    done.set_result(None)

            feed.add_hook(hook)
            await done
            feed.remove_hook(hook)
        else:
            async for _ in feed:
                if seen():
                    break
        tr_ring, dp_ring = feed.trades, feed.depth
        if tr_ring.written > tr_ring.capacity or dp_ring.written > dp_ring.capacity:
            raise RuntimeError("a ring wrapped during the paced run: latencies need every row")
        lat = message_latencies(
            wake_ns, wake_tr, wake_dp, tr_ring.tail(tr_ring.written), dp_ring.tail(dp_ring.written)
        )
        paced_extra["wakes_per_msg"] = len(wake_ns) / max(1, len(lat))
        paced_extra["reads_per_msg"] = feed.stats()["reads"] / max(1, len(lat))
    return lat[:n]


async def paced_ff_hook(info: dict, n: int) -> np.ndarray:
    return await _ff_consume(info, n, "hook")


async def paced_ff_async_for(info: dict, n: int) -> np.ndarray:
    return await _ff_consume(info, n, "async for")


async def paced_picows_orjson(info: dict, n: int) -> np.ndarray:
    """picows + orjson: a Python listener parses each frame; seen once ``loads`` returned."""
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    done = asyncio.get_running_loop().create_future()
    lat: list[int] = []
    now, loads, TEXT = time.time_ns, orjson.loads, WSMsgType.TEXT
    mark, warm = info.get("mark", _no_mark), info.get("warmup", 0)

    class Listener(WSListener):
        def on_ws_frame(self, tr, frame):
            if frame.msg_type == TEXT:
                msg = loads(frame.get_payload_as_bytes())
                lat.append(now() - msg["data"]["E"] * 1000)
                if len(lat) == warm or len(lat) == n:
                    mark()
                if len(lat) == n:
                    done.set_result(None)

    tr, _ = await ws_connect(Listener, info["url"], ssl_context=ctx(info), max_frame_size=1 << 20)
    await done
    tr.disconnect()
    return np.asarray(lat, np.float64) / 1e3


def native_why_not() -> str | None:
    sys.path.insert(0, os.path.join(HERE, "native"))
    from build import build  # benchmarks/native/build.py

    return None if build(verbose=True) else "not built (reason above)"


def floor_why_not() -> str | None:
    sys.path.insert(0, os.path.join(HERE, "native"))
    from build import build_floor

    return None if build_floor(verbose=True) else "not built (reason above)"


def run_native(exe, info: dict, n: int) -> np.ndarray:
    """A native paced client (``benchmarks/native``) in a process of its own: it writes its
    latencies to a file and reports its CPU over its own window (after the warm-up), which
    the harness takes as the run's (``paced_extra``), with any other figure it prints."""
    import tempfile
    from urllib.parse import urlsplit

    if exe is None:
        raise RuntimeError("the native client cannot be built here")
    port = str(urlsplit(info["ws"]).port)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "lat.f64")
        warm = min(info.get("warmup", 0), n - 1)
        cmd = [str(exe), "--port", port, "--target", PACED_TARGET, "--ca", info["ca"]]
        cmd += ["--n", str(n), "--lat-out", out, "--cpu-after", str(warm)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"{exe.name} exited {p.returncode}: {p.stderr[-1000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        if res.get("bad"):
            raise RuntimeError(f"{exe.name} could not parse {res['bad']} messages")
        msgs = n - warm
        paced_extra["cpu_s"], paced_extra["cpu_msgs"] = res["cpu"], msgs
        for k in ("utime", "stime"):
            if k in res:
                paced_extra[f"{k}_us_per_msg"] = res[k] / msgs * 1e6
        if "reads" in res:
            paced_extra["reads_per_msg"] = res["reads"] / n
        return np.fromfile(out, np.float64)


async def paced_beast(info: dict, n: int) -> np.ndarray:
    """The native C++ client (Boost.Beast + simdjson), one blocking read per message."""
    sys.path.insert(0, os.path.join(HERE, "native"))
    from build import build

    return run_native(build(verbose=False), info, n)


async def paced_floor(info: dict, n: int) -> np.ndarray:
    """The floor (``native/floor_client.c``): blocking SSL_read, frame headers, no parse; what
    the kernel and TLS alone cost a client that sleeps between messages."""
    sys.path.insert(0, os.path.join(HERE, "native"))
    from build import build_floor

    return run_native(build_floor(verbose=False), info, n)


PACED_CLIENTS: dict[str, tuple[PacedClient, tuple[str, ...], Callable[[], str | None] | None]] = {
    "C++ Beast + simdjson": (paced_beast, (), native_why_not),
    FLOOR: (paced_floor, (), floor_why_not),
    "picows + orjson": (paced_picows_orjson, ("orjson",), None),
    "fastfeed async for": (paced_ff_async_for, (), None),
    "fastfeed hook": (paced_ff_hook, (), None),
}
PACED_NOTES: list[str] = []


def paced_child(name: str, info: dict, n: int, warmup: int, out: str) -> None:
    """Runs in the client's own process: one paced client, ``n`` messages; saves the
    latencies to ``out`` (.npy) and prints its CPU per message (``cpu_us_per_msg``, over
    the window the client marked, see the contract above) and extras as one JSON line."""
    import importlib
    import resource

    import fastfeed  # noqa: F401  (imports before the clock: they are not the client's work)
    from fastfeed import run

    fn, mods, _ = PACED_CLIENTS[name]
    for m in mods:
        importlib.import_module(m)

    def children() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    marks: list[float] = []

    def mark() -> None:
        if len(marks) < 2:
            marks.append(time.process_time() + children())

    def own_cpu(cpu_s: float, msgs: int) -> None:
        paced_extra.update(cpu_s=cpu_s, cpu_msgs=msgs)

    info = dict(info, url=info["ws"] + PACED_TARGET, warmup=warmup, mark=mark, own_cpu=own_cpu)
    c0, w0 = time.process_time() + children(), time.perf_counter()
    lat = run(fn(info, n))
    c1 = time.process_time() + children()
    lat = np.asarray(lat, np.float64)
    np.save(out, lat)
    if "cpu_s" in paced_extra:  # the client timed its own window
        cpu, msgs, window = paced_extra.pop("cpu_s"), paced_extra.pop("cpu_msgs"), "own"
    elif len(marks) == 2 and warmup < n:
        cpu, msgs, window = marks[1] - marks[0], n - warmup, "marked"
    else:
        cpu, msgs, window = c1 - c0, n, "whole call"
    res = dict(paced_extra, cpu=c1 - c0, cpu_us_per_msg=cpu / msgs * 1e6, cpu_window=window)
    print(json.dumps(dict(res, wall=time.perf_counter() - w0, received=len(lat))))


_SIM_RESULT = re.compile(r"PacedResult\((.*)\)")


def parse_sim_result(text: str) -> dict:
    """The simulator's logged ``PacedResult(...)`` (its stderr) -> dict of its fields."""
    m = _SIM_RESULT.search(text)
    if not m:
        return {}
    out = {}
    for k, v in re.findall(r"(\w+)=([^,]+)", m.group(1)):
        out[k] = v == "True" if v in ("True", "False") else float(v)
    return out


def measure_paced(name, rate, n, warmup=0, fine=True, timeout=900, script=__file__) -> dict:
    """One paced run: a fresh simulator sending ``n`` messages at ``rate``/s (``fine``: each
    at its own time), one client in a process of its own.  Returns the latencies, the
    client's CPU and extras, and the simulator's achieved rate and send lag."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "sim.err"), "w+") as err:
        sim_args = ["--paced", str(rate), "--paced-count", str(n)] + (["--paced-fine"] * fine)
        sim = subprocess.Popen(
            [sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT", "--rate", "1"]
            + sim_args,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=HERE,  # not ROOT: ``-m`` puts the working directory first on sys.path
            env=child_env(),
        )
        try:
            line = sim.stdout.readline()
            if not line:
                sim.wait()
                err.seek(0)
                raise RuntimeError(f"the simulator did not start: {err.read()[-2000:]}")
            info = json.loads(line)
            out = os.path.join(tmp, "lat.npy")
            p = subprocess.run(
                [sys.executable, os.path.abspath(script), "--child-paced", name]
                + ["--info", json.dumps(info), "--n", str(n), "--out", out]
                + ["--paced-warmup", str(warmup)],
                cwd=ROOT,
                env=child_env(HERE),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if p.returncode != 0:
                raise RuntimeError(f"{name} at {rate}/s failed: {p.stderr[-2000:]}")
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res["lat"] = np.load(out)
        finally:
            sim.terminate()
            sim.wait()
        err.seek(0)
        res["sim"] = parse_sim_result(err.read())
    return res


def run_stats(res: dict, n: int, warmup: int) -> dict:
    """One run's figures: latency percentiles after the warm-up messages, CPU per message
    over every message (µs), and the simulator's."""
    lat = np.asarray(res["lat"], np.float64)
    if len(lat) != n:
        raise RuntimeError(f"client returned {len(lat)} latencies for {n} messages")
    body = lat[warmup:]
    out = {
        "p50_us": float(np.percentile(body, 50)),
        "p99_us": float(np.percentile(body, 99)),
        "p99.9_us": float(np.percentile(body, 99.9)),
        "min_us": float(body.min()),
        "cpu_us_per_msg": res["cpu_us_per_msg"],
        "messages": len(body),
        "received": len(lat),
    }
    for k in ("wakes_per_msg", "reads_per_msg", "stime_us_per_msg"):
        if k in res:
            out[k] = res[k]
    sim = res.get("sim") or {}
    if sim:
        msgs, secs = sim.get("messages", 0), sim.get("seconds", 0)
        out["sim_rate"] = (msgs - 1) / secs if secs else float("nan")
        out["sim_lag_p50_us"] = sim.get("lag_p50", float("nan")) * 1e6
        out["sim_lag_p99_us"] = sim.get("lag_p99", float("nan")) * 1e6
        out["sim_max_burst"] = sim.get("max_burst", float("nan"))
    return out


def summarize_paced(runs: dict) -> dict:
    """``runs[rate][client]``: a list of :func:`run_stats` dicts, one per round -> the median
    of each figure over the rounds (and the rounds' count)."""
    out: dict = {}
    for rate, by_client in runs.items():
        out[rate] = {}
        for name, rs in by_client.items():
            if not rs:
                continue
            keys = [k for k in rs[0] if all(k in r for r in rs)]
            out[rate][name] = {k: statistics.median(r[k] for r in rs) for k in keys}
            out[rate][name]["rounds"] = len(rs)
    return out


NATIVE = "C++ Beast + simdjson"


def paced_table(summary: dict) -> str:
    """The markdown table of a paced summary, one row per rate and client."""
    lines = [
        "| rate/s | client | p50 µs | p99 µs | p99.9 µs | CPU µs/msg | CPU vs C++ | wakes/msg "
        "| kernel µs/msg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in sorted(summary, key=float):
        cpp = summary[rate].get(NATIVE, {}).get("cpu_us_per_msg")
        for name, r in summary[rate].items():
            vs = f"{r['cpu_us_per_msg'] / cpp:.2f}" if cpp else "-"
            wk = f"{r['wakes_per_msg']:.2f}" if "wakes_per_msg" in r else "-"
            ks = f"{r['stime_us_per_msg']:.2f}" if "stime_us_per_msg" in r else "-"
            lines.append(
                f"| {float(rate):,.0f} | {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} "
                f"| {r['p99.9_us']:.1f} | {r['cpu_us_per_msg']:.2f} | {vs} | {wk} | {ks} |"
            )
    return "\n".join(lines)


def sim_table(summary: dict) -> str:
    """What the simulator achieved per rate (medians over every run at that rate)."""
    lines = [
        "| rate/s | achieved/s | send lag p50 µs | send lag p99 µs | most msgs per loop turn |",
        "|---|---|---|---|---|",
    ]
    for rate in sorted(summary, key=float):
        rs = [r for r in summary[rate].values() if "sim_rate" in r]
        if not rs:
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k.startswith("sim_")}
        lines.append(
            f"| {float(rate):,.0f} | {med['sim_rate']:,.0f} | {med['sim_lag_p50_us']:.0f} "
            f"| {med['sim_lag_p99_us']:.0f} | {max(r['sim_max_burst'] for r in rs):.0f} |"
        )
    return "\n".join(lines)


def paced_bars(summary: dict) -> list[str]:
    """Issue 13's bars for the paced runs, each PASS / FAIL / n/a (a client missing)."""
    out = []

    def verdict(label, ok):
        out.append(f"{label}: {'n/a' if ok is None else 'PASS' if ok else 'FAIL'}")

    top = max(summary, key=float) if summary else None
    s = summary.get(top, {}) if top else {}
    cpp = s.get(NATIVE)
    for name in ("fastfeed hook", "fastfeed C-level"):
        r = s.get(name)
        ok = (
            None
            if not (r and cpp)
            else r["p50_us"] <= cpp["p50_us"] and r["p99_us"] <= cpp["p99_us"]
        )
        det = (
            f" ({r['p50_us']:.1f}/{r['p99_us']:.1f} vs {cpp['p50_us']:.1f}/{cpp['p99_us']:.1f} µs)"
            if r and cpp
            else ""
        )
        verdict(f"{top} msg/s: {name} p50 and p99 <= C++{det}", ok)
    af = s.get("fastfeed async for")
    refs = [s[k]["p50_us"] for k in ("fastfeed hook", "fastfeed C-level") if k in s]
    ok = None if not (af and refs) else all(af["p50_us"] <= x + 10 for x in refs)
    verdict(f"{top} msg/s: fastfeed async for p50 within 10 µs of hook/C-level", ok)
    for name, ref, factor, label in (
        ("fastfeed C-level", NATIVE, 0.5, "CPU/msg <= half of C++"),
        ("fastfeed async for", "picows + orjson", 1.0, "CPU/msg < picows + orjson"),
    ):
        per = []
        for rate in sorted(summary, key=float):
            a, b = summary[rate].get(name), summary[rate].get(ref)
            if a and b:
                ratio = a["cpu_us_per_msg"] / b["cpu_us_per_msg"]
                per.append((rate, ratio, ratio <= factor if factor < 1 else ratio < factor))
        ok = None if not per else all(p[2] for p in per)
        det = ", ".join(f"{float(r):,.0f}/s {x:.2f}" for r, x, _ in per)
        verdict(f"every rate: {name} {label} ({det})", ok)
    # Not a bar: where the half-of-C++ bar lies against the floor (a client that only reads).
    per = [
        (r, summary[r][FLOOR]["cpu_us_per_msg"] / summary[r][NATIVE]["cpu_us_per_msg"])
        for r in sorted(summary, key=float)
        if FLOOR in summary[r] and NATIVE in summary[r]
    ]
    if per:
        det = ", ".join(f"{float(r):,.0f}/s {x:.2f}" for r, x in per)
        under = [f"{float(r):,.0f}/s" for r, x in per if x > 0.5]
        out.append(
            f"note: the floor's CPU/msg vs C++ ({det}): "
            + (
                f"above 0.5 at {', '.join(under)}, where no client that sleeps between messages "
                "can meet the half-of-C++ bar"
                if under
                else "below 0.5 at every rate"
            )
        )
    return out


# ---------------------------------------------------------------------------- main


def rate_list(text: str) -> list[float]:
    """``"1000,5000,20000"`` -> [1000.0, 5000.0, 20000.0]; ``"0"`` -> [] (no paced runs)."""
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--paced {text!r}: expected rates like 1000,5000"
        ) from None
    if any(r < 0 for r in rates):
        raise argparse.ArgumentTypeError(f"--paced {text!r}: rates must be positive")
    return [r for r in rates if r > 0]


def paced_main(a) -> dict:
    """Every paced run: per round, per rate, every client in a rotated order; prints and
    returns the medians (and writes ``--table``)."""
    for note in PACED_NOTES:
        print(note)
    names = list(PACED_CLIENTS)
    if a.only:
        keys = [k.strip() for k in a.only.split(",") if k.strip()]
        names = [x for x in names if any(k in x for k in keys)]
    ok = []
    for name in names:
        _, mods, why_not = PACED_CLIENTS[name]
        missing = [m for m in mods if importlib_util_find(m) is None]
        why = f"{', '.join(missing)} missing" if missing else (why_not() if why_not else None)
        if why:
            print(f"paced {name}: skipped: {why}")
        else:
            ok.append(name)
    n = a.paced_n + a.paced_warmup
    fine = not a.paced_coarse
    print(
        f"\npaced: {', '.join(f'{r:,.0f}' for r in a.paced)} msgs/s, {a.paced_n:,} messages "
        f"measured after {a.paced_warmup} of warm-up, {a.paced_rounds} round(s), "
        f"{'fine' if fine else 'coarse'} simulator timing",
        flush=True,
    )
    runs: dict = {str(int(r) if r == int(r) else r): {x: [] for x in ok} for r in a.paced}
    failed: dict[str, str] = {}
    for rnd in range(a.paced_rounds):
        order = ok[rnd % len(ok) :] + ok[: rnd % len(ok)] if ok else []
        for rate, key in zip(a.paced, runs):
            for name in order:
                if name in failed:
                    continue
                try:
                    res = measure_paced(name, rate, n, a.paced_warmup, fine, a.timeout)
                    st = run_stats(res, n, a.paced_warmup)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    # one broken client must not cost the others' figures: dropped, named
                    failed[name] = f"{rate:,.0f}/s round {rnd + 1}: {e}"
                    print(f"paced {name}: FAILED, dropped from the run: {e}", flush=True)
                    continue
                runs[key][name].append(st)
                print(
                    f"round {rnd + 1} {rate:>7,.0f}/s {name:38s} p50 {st['p50_us']:7.1f} "
                    f"p99 {st['p99_us']:8.1f} p99.9 {st['p99.9_us']:8.1f} µs  "
                    f"CPU {st['cpu_us_per_msg']:6.2f} µs/msg  sim {st.get('sim_rate', 0):,.0f}/s "
                    f"lag p99 {st.get('sim_lag_p99_us', 0):.0f} µs",
                    flush=True,
                )
    summary = summarize_paced(runs)
    table = paced_table(summary)
    sims = sim_table(summary)
    head = (
        f"Paced runs: {a.paced_n:,} messages per run after {a.paced_warmup} of warm-up, median "
        f"of {a.paced_rounds} round(s); latency = wall clock when the consumer has the message "
        f"minus E; CPU = the client process's CPU per message."
    )
    print("\n" + head + "\n\n" + table + "\n\nSimulator:\n\n" + sims + "\n")
    bars = paced_bars(summary)
    print("\n".join(bars), flush=True)
    if a.table:
        with open(a.table, "w") as f:
            bullets = "\n".join(f"- {b}" for b in bars)
            f.write(f"{head}\n\n{table}\n\nSimulator:\n\n{sims}\n\nBars:\n\n{bullets}\n")
    return {
        "rates": a.paced,
        "messages": a.paced_n,
        "warmup": a.paced_warmup,
        "rounds": a.paced_rounds,
        "fine": fine,
        "by_rate": summary,
        "runs": runs,
        "bars": bars,
        "failed": failed,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="messages per client run")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    ap.add_argument("--only", default="", help="comma-separated substrings of client names")
    ap.add_argument(
        "--paced",
        type=rate_list,
        default=rate_list("1000,5000,20000"),
        help="paced rates, msgs/s, comma-separated (0: no paced runs)",
    )
    ap.add_argument("--paced-n", type=int, default=20000, help="measured messages per paced run")
    ap.add_argument(
        "--paced-warmup",
        type=int,
        default=200,
        help="messages sent before the measured ones (their latencies dropped, CPU kept)",
    )
    ap.add_argument("--paced-rounds", type=int, default=3, help="paced rounds (median reported)")
    ap.add_argument(
        "--paced-coarse",
        action="store_true",
        help="the simulator's default timing (millisecond ticks: bursts) instead of --paced-fine",
    )
    ap.add_argument("--timeout", type=float, default=900, help="per client run, seconds")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument("--table", help="also write the paced results as a markdown table here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-paced", help=argparse.SUPPRESS)
    ap.add_argument("--info", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, json.loads(a.info), a.n)
    if a.child_paced:
        return paced_child(a.child_paced, json.loads(a.info), a.n, a.paced_warmup, a.out)

    names = list(CLIENTS)
    if a.only:
        keys = [k.strip() for k in a.only.split(",") if k.strip()]
        names = [x for x in names if any(k in x for k in keys)]
    names = available(names)
    runs = {x: [] for x in names}
    for r in range(a.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            res = measure(name, a.n, a.timeout)
            runs[name].append(res)
            extra = {k: v for k, v in res.items() if k not in ("wall", "cpu")}
            print(
                f"round {r + 1} {name:26s} {res['cpu'] / a.n * 1e9:8.0f} ns/msg CPU "
                f"{a.n / res['wall']:10.0f} msgs/s {extra or ''}",
                flush=True,
            )

    if a.repeat < 1:
        names = []  # --repeat 0: latency only
    ns = {x: statistics.median(v["cpu"] for v in runs[x]) / a.n * 1e9 for x in names}
    rate = {x: statistics.median(a.n / v["wall"] for v in runs[x]) for x in names}
    report = {
        "n": a.n,
        "repeat": a.repeat,
        "blast": {
            x: {"cpu_ns_per_msg": ns[x], "msgs_per_s": rate[x], "runs": runs[x]} for x in names
        },
        "paced": {},
    }
    oj, cnt = ns.get("picows + orjson"), ns.get("cython counting listener")
    if names:
        print(
            f"\n{a.n:,} messages per run, median of {a.repeat} round(s); CPU = client process time\n"
        )
        print("| client | CPU ns/msg | msgs/s | CPU vs picows+orjson | CPU vs counting listener |")
        print("|---|---|---|---|---|")
    for x in names:
        r1 = f"{ns[x] / oj:.3f}" if oj else "-"
        r2 = f"{ns[x] / cnt:.2f}" if cnt else "-"
        print(f"| {x} | {ns[x]:.0f} | {rate[x]:.0f} | {r1} | {r2} |")
    ff = ns.get("fastfeed")
    if ff and oj:
        print(
            f"\nbar 1: fastfeed <= 1/8 of picows+orjson: {ff / oj:.3f} -> {'PASS' if ff * 8 <= oj else 'FAIL'}"
        )
    if ff and cnt:
        # per round too: the ratio within one round is the least noisy figure
        per = [
            runs["fastfeed"][i]["cpu"] / runs["cython counting listener"][i]["cpu"]
            for i in range(a.repeat)
        ]
        print(
            f"bar 2: fastfeed <= 1.5x counting listener: {ff / cnt:.2f}x "
            f"(per round {', '.join(f'{x:.2f}' for x in per)}) -> {'PASS' if ff <= 1.5 * cnt else 'FAIL'}"
        )
    if a.paced and a.paced_n and a.paced_rounds:
        report["paced"] = paced_main(a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


def plug_consumer_clients() -> None:
    """Add fastfeed's C-level consumer from ``benchmarks/consumer_clients.py`` when it can be
    imported; same contract.  (That file's hook and ``async for`` clients serve its
    ``--together`` runs; here the hook and ``async for`` clients above stand for them.)  Its
    ``build()`` (a Cython module compiled on first use) runs before any timed run."""
    try:
        import consumer_clients
    except Exception as e:  # whatever stops it, the other clients still run
        PACED_NOTES.append(
            f"fastfeed C-level: benchmarks/consumer_clients.py not importable ({e!r}), slot empty"
        )
        return

    def why_not() -> str | None:
        try:
            if hasattr(consumer_clients, "build"):
                consumer_clients.build()
        except Exception as e:
            return f"consumer_clients.build() failed: {e!r}"[:500]
        return None

    for attr, name in (("paced_clevel", "fastfeed C-level"),):
        if hasattr(consumer_clients, attr):
            PACED_CLIENTS[name] = (getattr(consumer_clients, attr), (), why_not)
        else:
            PACED_NOTES.append(f"{name}: consumer_clients.{attr} not defined yet, skipped")


# Last: consumer_clients imports names from this module.
plug_consumer_clients()

if __name__ == "__main__":
    main()
