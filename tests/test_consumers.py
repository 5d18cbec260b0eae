"""The consumer paths (docs/decisions/0213-consumer-paths.md): a C-level consumer
(``fastfeed/feed/consumer.pxd``, the example strategy ``examples/cstrategy``), a synchronous
hook and ``async for`` deliver exactly the rings' rows, in order, over the real transport (TLS
loopback, the simulator's blast in a child process); the accessors allocate nothing."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tracemalloc

import numpy as np
import pytest
from children import child_env
from feed_fixtures import make_feed, until
from sim_fixtures import run

import fastfeed
from fastfeed import TRADE_DTYPE, BinanceDecoder, Ring
from fastfeed.feed._filter import FeedSink
from fastfeed.sim.remote import RemoteSimulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "cstrategy")
STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms"]
U64 = np.uint64


_env = child_env


def build_example(dest) -> str:
    """Builds examples/cstrategy in ``dest`` the way a user would; returns the directory."""
    cc = sysconfig.get_config_var("CC") or "cc"
    missing = None
    if shutil.which(cc.split()[0]) is None:
        missing = f"no C compiler ({cc})"
    elif importlib.util.find_spec("Cython") is None:
        missing = "no Cython"
    if missing:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{missing} under CI: the example strategy must be built")
        pytest.skip(f"{missing}: the example strategy cannot be built")
    for name in ("vwap.pyx", "setup.py"):
        shutil.copy(os.path.join(EXAMPLE, name), dest)
    p = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=dest,
        env=dict(_env(), CFLAGS="-Wall -Werror -Wno-unused-function"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return str(dest)


def load_vwap(directory: str):
    so = [f for f in os.listdir(directory) if f.startswith("vwap.") and f.endswith(".so")]
    assert so, os.listdir(directory)
    spec = importlib.util.spec_from_file_location("vwap", os.path.join(directory, so[0]))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def vwap_dir(tmp_path_factory) -> str:
    return build_example(tmp_path_factory.mktemp("cstrategy"))


def weighted_sum(values: np.ndarray, k0: int) -> int:
    """sum over rows of (k0 + i + 1) * value (mod 2**64): the C consumer's checksum."""
    k = np.arange(k0 + 1, k0 + len(values) + 1, dtype=U64)
    with np.errstate(over="ignore"):
        return int(np.sum(k * values.astype(np.int64).view(U64), dtype=U64))


class PathSums:
    """What a Python path saw: rows and order-sensitive checksums of trades and depth, read
    by cursor from the rings."""

    def __init__(self, feed):
        self.feed = feed
        self.tr = feed.trades.reader()
        self.de = feed.depth.reader()
        self.trades = self.depth_rows = self.trade_sum = self.depth_sum = 0
        self.calls = 0

    def take(self) -> None:
        self.calls += 1
        t = self.tr.read()
        d = self.de.read()
        self.trade_sum = (self.trade_sum + weighted_sum(t["trade_id"], self.trades)) % 2**64
        self.trades += len(t)
        mix = d["last_id"].view(U64) ^ d["price_fp"].view(U64)
        self.depth_sum = (
            self.depth_sum + weighted_sum(mix.view(np.int64), self.depth_rows)
        ) % 2**64
        self.depth_rows += len(d)

    def stats(self) -> dict:
        return {
            "trades": self.trades,
            "depth_rows": self.depth_rows,
            "trade_sum": self.trade_sum,
            "depth_sum": self.depth_sum,
            "lost": self.tr.lost + self.de.lost,
        }


async def blast_through_three_paths(vwap, n: int, rounds: int, measure_blocks: bool) -> dict:
    """One feed, the three consumers registered at once, ``rounds`` blasts of ``n``; the
    blocks are counted over the last one."""
    out: dict = {}
    async with (
        RemoteSimulator(symbols=["BTCUSDT"], seed=1, rate=1) as sim,
        make_feed(sim, STREAMS, stream_timeout=None, trades=1 << 18, depth=1 << 20) as feed,
    ):
        sink = feed.sink
        c = vwap.VWAP(feed)
        hook = PathSums(feed)
        order: list[bool] = []

        def on_read() -> None:
            # The C consumer ran first: it has seen every trade committed so far.
            if len(order) < 1000:
                order.append(c.stats()["trades"] == feed.trades.written - base_tr)
            hook.take()

        base_tr = feed.trades.written
        feed.add_hook(on_read)
        aio = PathSums(feed)
        stop = asyncio.Event()

        async def consume():
            async for _ in feed:
                aio.take()
                if (
                    stop.is_set()
                    and aio.trades == hook.trades
                    and aio.depth_rows == hook.depth_rows
                ):
                    return

        task = asyncio.create_task(consume())
        blocks0 = 0
        for r in range(rounds):
            await sim.prepare_blast(n)  # new messages: the ids go on from the last round's
            if r == rounds - 1 and measure_blocks:
                import gc

                gc.collect()
                gc.disable()
                blocks0 = sys.getallocatedblocks()
            base = sink.accepted_total
            await sim.blast(n)
            await until(lambda base=base: sink.accepted_total >= base + n, 120, "blast", feed)
        stop.set()
        sink.mark(0)  # one more wake (a marker row), so the async consumer sees the last read
        await asyncio.wait_for(task, 30)
        if measure_blocks:
            out["blocks"] = sys.getallocatedblocks() - blocks0
            import gc

            gc.enable()
        out["c"] = c.stats()
        out["hook"] = hook.stats()
        out["aio"] = aio.stats()
        out["hook_calls"], out["aio_calls"] = hook.calls, aio.calls
        out["c_first"] = all(order) and len(order) > 0
        out["accepted"] = sink.counters()["accepted"]
        out["written"] = {"trades": feed.trades.written - base_tr}
        if feed.trades.written <= feed.trades.capacity:
            tr = feed.trades.tail(feed.trades.written - base_tr)
            out["vwap"] = (
                c.vwap("BTCUSDT"),
                float(np.sum(tr["price"] * tr["qty"]) / np.sum(tr["qty"])),
            )
            out["trades_of"] = (c.trades_of("BTCUSDT"), len(tr))
        c.close()
        out["consumers_left"] = sink.consumers
    return out


def check_paths(r: dict, n_messages: int) -> None:
    c, hook, aio = r["c"], r["hook"], r["aio"]
    assert c["lost"] == 0 and c["breaks"] == 0, c
    assert hook["lost"] == 0 and aio["lost"] == 0, (hook, aio)
    for k in ("trades", "depth_rows", "trade_sum", "depth_sum"):
        assert c[k] == hook[k] == aio[k], (k, c, hook, aio)
    acc = r["accepted"]
    assert c["trades"] == acc["aggTrade"] == r["written"]["trades"]
    # the blasts, plus the few live updates of the simulator's market (rate 1/s)
    assert n_messages <= acc["aggTrade"] + acc["depth"] < n_messages + 1000
    assert r["c_first"], "a hook ran before the C-level consumer had seen the read's rows"
    assert r["consumers_left"] == 0


def test_three_paths_deliver_the_rings_rows_in_order(vwap_dir):
    vwap = load_vwap(vwap_dir)
    n = 40_000
    r = run(blast_through_three_paths(vwap, n, 1, False), 120)
    check_paths(r, n)
    # ... and they are the rings' rows: checksums over the rings themselves
    got, want = r["vwap"]
    assert got == pytest.approx(want, rel=1e-12)
    assert r["trades_of"][0] == r["trades_of"][1] == r["c"]["trades"]
    # a wake per read at most: never more calls than reads
    assert r["hook_calls"] > 0 and 0 < r["aio_calls"] <= r["hook_calls"] + 1


def _ring_sums(feed) -> dict:
    tr = feed.trades.tail(feed.trades.written)
    de = feed.depth.tail(feed.depth.written)
    mix = de["last_id"].view(U64) ^ de["price_fp"].view(U64)
    return {
        "trades": len(tr),
        "depth_rows": len(de),
        "trade_sum": weighted_sum(tr["trade_id"], 0),
        "depth_sum": weighted_sum(mix.view(np.int64), 0),
    }


def test_c_consumer_checksums_equal_the_rings(vwap_dir):
    """The C consumer's checksums against numpy over the whole rings (registered before the
    first row, rings large enough to hold every row)."""
    vwap = load_vwap(vwap_dir)

    async def body():
        async with (
            RemoteSimulator(symbols=["BTCUSDT"], seed=2, rate=1) as sim,
            make_feed(sim, STREAMS, stream_timeout=None, trades=1 << 16, depth=1 << 18) as feed,
        ):
            assert feed.trades.written == 0 and feed.depth.written == 0
            c = vwap.VWAP(feed)
            await sim.blast(20_000)
            await until(lambda: feed.sink.accepted_total >= 20_000, 60, "blast", feed)
            s = c.stats()
            want = _ring_sums(feed)
            c.close()
            return s, want

    s, want = run(body(), 90)
    for k, v in want.items():
        assert s[k] == v, (k, s, want)


@pytest.mark.slow  # ~1 min: 2 x 1,000,000 messages over TLS, in an interpreter of its own
def test_three_paths_over_1m_messages_allocate_nothing(vwap_dir):
    p = subprocess.run(
        [sys.executable, __file__, "--measure", vwap_dir],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=_env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    import json

    r = json.loads(p.stdout.strip().splitlines()[-1])
    print("blocks over the last 1,000,000 messages:", r["blocks"], r["c"])
    check_paths(r, 2 * 1_000_000)
    assert r["blocks"] < 2000, r  # flat: not ~N


def test_consumer_registration_rules(vwap_dir):
    vwap = load_vwap(vwap_dir)

    class FakeFeed:
        decoder = BinanceDecoder()
        sink = FeedSink(decoder)

    f = FakeFeed()
    cs = [vwap.VWAP(f) for _ in range(8)]
    assert f.sink.consumers == 8
    with pytest.raises(ValueError, match="at most 8"):
        vwap.VWAP(f)
    cs[3].close()
    cs[3].close()  # idempotent
    assert f.sink.consumers == 7
    assert f.sink.remove_consumers(cs[0]) == 1
    assert f.sink.consumers == 6
    # A consumer added now starts at the rings' current end; rows reach it per flush.
    conn = BinanceDecoder(share=f.decoder)
    payload = (
        b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":%d,"p":"2","q":"3","f":1,"l":1,"T":1,"m":true}'
    )
    f.sink.decode(conn, payload % 1)
    f.sink.flush()
    late = cs[7]
    before = late.stats()["trades"]
    f.sink.decode(conn, payload % 2)
    f.sink.decode(conn, payload % 3)
    assert late.stats()["trades"] == before  # not before the read ends
    f.sink.flush()
    assert late.stats()["trades"] == before + 2
    assert late.vwap("BTCUSDT") == 2.0
    for c in cs:
        c.close()
    assert f.sink.consumers == 0


# ---------------------------------------------------------------------------- accessors


def _decoded(n: int = 300):
    dec = BinanceDecoder(trades=256, depth=1024)
    sink = FeedSink(dec)
    conn = BinanceDecoder(share=dec)
    for i in range(1, n + 1):
        sink.decode(
            conn,
            b'{"e":"aggTrade","E":%d,"s":"BTCUSDT","a":%d,"p":"%d.5","q":"1","f":1,"l":1,'
            b'"T":1,"m":false}' % (i, i, i),
        )
        sink.decode(
            conn,
            b'{"e":"depthUpdate","E":%d,"s":"BTCUSDT","U":%d,"u":%d,"b":[["%d","1"]],'
            b'"a":[["%d","2"],["%d","3"]]}' % (i, i, i, i, i + 1, i + 2),
        )
    return dec, sink


def test_ring_latest_and_row_copy_into_a_caller_buffer():
    dec, _ = _decoded()
    out = np.zeros(1, TRADE_DTYPE)
    seq = dec.trades.latest(out)
    assert seq == dec.trades.written - 1 == 299
    assert out.tobytes() == dec.trades.tail(1).tobytes()
    assert dec.trades.row(290, out) == 290 and out[0]["trade_id"] == 291
    assert dec.trades.row(10, out) == -1  # overwritten (capacity 256)
    assert dec.trades.row(300, out) == -1  # not written yet
    assert dec.trades.row(-1, out) == -1
    assert Ring(TRADE_DTYPE, 4).latest(out) == -1
    with pytest.raises(TypeError, match="dtype"):
        dec.trades.latest(np.zeros(1, fastfeed.DEPTH_DTYPE))
    with pytest.raises(TypeError, match="numpy array"):
        dec.trades.latest(bytearray(128))
    with pytest.raises(ValueError, match="at least one row"):
        dec.trades.latest(np.zeros(0, TRADE_DTYPE))
    ro = np.zeros(1, TRADE_DTYPE)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        dec.trades.latest(ro)


def test_last_trade_and_last_row_per_symbol():
    dec, sink = _decoded()
    sym = dec.symbols.find("BTCUSDT")
    out = np.zeros(1, TRADE_DTYPE)
    assert sink.last_trade(sym, out) == 299 and out[0]["trade_id"] == 300
    dout = np.zeros(1, fastfeed.DEPTH_DTYPE)
    seq = sink.last_row(sym, 2, dout)  # the depth slot: the last level of the last message
    assert seq == dec.depth.written - 1
    assert dout[0]["last_id"] == 300 and dout[0]["price"] == 302.0 and dout[0]["side"] == 1
    assert sink.last_row(sym, 3, np.zeros(1, fastfeed.TICKER_DTYPE)) == -1  # no ticker yet
    assert sink.last_trade(5, out) == -1  # a symbol with no trade


def test_accessors_allocate_nothing_per_call():
    dec, sink = _decoded()
    sym = dec.symbols.find("BTCUSDT")
    out = np.zeros(1, TRADE_DTYPE)
    dout = np.zeros(1, fastfeed.DEPTH_DTYPE)
    calls = (
        lambda: dec.trades.latest(out),
        lambda: dec.trades.row(299, out),
        lambda: sink.last_trade(sym, out),
        lambda: sink.last_row(sym, 2, dout),
    )
    for f in calls:
        for _ in range(1000):
            f()
    tracemalloc.start()
    try:
        blocks0 = sys.getallocatedblocks()
        snap0 = tracemalloc.take_snapshot()
        for f in calls:
            for _ in range(100_000):
                f()
        snap1 = tracemalloc.take_snapshot()
        blocks1 = sys.getallocatedblocks()
    finally:
        tracemalloc.stop()
    grown = [s for s in snap1.compare_to(snap0, "lineno") if s.size_diff > 0 and s.count_diff > 10]
    assert blocks1 - blocks0 < 100, blocks1 - blocks0
    assert not grown, grown[:5]


def test_feed_accessors_by_name():
    """BinanceFeed.last_trade / last_row resolve names once and then allocate nothing."""
    from fastfeed.feed.rings import FeedRings

    dec, sink = _decoded()

    class R(FeedRings):
        pass

    r = R()
    r.decoder, r.sink = dec, sink
    out = np.zeros(1, TRADE_DTYPE)
    assert r.last_trade("BTCUSDT", out) == 299
    assert (
        r.last_row("BTCUSDT", "depth", np.zeros(1, fastfeed.DEPTH_DTYPE)) == dec.depth.written - 1
    )
    with pytest.raises(KeyError):
        r.last_trade("NOPE", out)
    with pytest.raises(ValueError, match="slot"):
        r.last_row("BTCUSDT", "depthh", out)
    for _ in range(1000):
        r.last_trade("BTCUSDT", out)
    b0 = sys.getallocatedblocks()
    for _ in range(100_000):
        r.last_trade("BTCUSDT", out)
    assert sys.getallocatedblocks() - b0 < 100


def test_row_padding_is_zero():
    """Rows are compared as bytes (tobytes, hashes of raw rows): the padding between and after
    fields is zero in every ring after decoding the corpus."""
    from corpus import corpus_dir

    dec = BinanceDecoder()
    d = corpus_dir()
    for name in sorted(os.listdir(d)):
        if name.endswith(".jsonl"):
            with open(os.path.join(d, name), "rb") as fh:
                dec.decode_lines(fh.read())
    for ring in (dec.trades, dec.depth, dec.tickers, dec.partial):
        a = ring.array[: ring.written]
        pad = np.ones(a.dtype.itemsize, bool)
        for fdt, off, *_ in a.dtype.fields.values():
            pad[off : off + fdt.itemsize] = False
        raw = a.view(np.uint8).reshape(len(a), a.dtype.itemsize)
        assert len(a) > 0
        assert not raw[:, pad].any(), ring


if __name__ == "__main__" and sys.argv[1:2] == ["--measure"]:
    import json

    mod = load_vwap(sys.argv[2])
    print(json.dumps(run(blast_through_three_paths(mod, 1_000_000, 2, True), 800)))


# ---------------------------------------------------------------------------- waiters


def test_waiters_resolved_after_hooks_and_pending_rows_return_at_once():
    dec = BinanceDecoder()
    sink = FeedSink(dec)
    conn = BinanceDecoder(share=dec)
    payload = (
        b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":%d,"p":"2","q":"3","f":1,"l":1,"T":1,"m":true}'
    )
    loop = asyncio.new_event_loop()
    try:
        seen: list[str] = []
        fut = sink.waiter(loop)
        assert fut is not None and not fut.done()
        fut.add_done_callback(lambda f: seen.append("waiter"))
        sink.add_hook(lambda: seen.append("hook" + ("+done" if fut.done() else "")))
        sink.decode(conn, payload % 1)
        sink.flush()
        assert fut.done() and seen == ["hook"]  # the hook ran before the future was resolved
        # a read while the woken task has not run yet: its rows are visible to it, no extra wake
        sink.decode(conn, payload % 2)
        sink.flush()
        nxt = sink.waiter(loop)
        assert nxt is not None and not nxt.done()
        nxt.cancel()
        # rows while nobody waits: the next wait returns at once, then waits again
        sink.decode(conn, payload % 3)
        sink.flush()
        assert sink.waiter(loop) is None
        again = sink.waiter(loop)
        assert again is not None and not again.done()
        sink.wake()
        assert again.done()
        # cancelled waits while no read comes stay bounded
        assert sink.waiter(loop) is not None  # woken by wake(): nothing pending
        b0 = sys.getallocatedblocks()
        for _ in range(20_000):
            f = sink.waiter(loop)
            assert f is not None
            f.cancel()
        assert sys.getallocatedblocks() - b0 < 200
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
