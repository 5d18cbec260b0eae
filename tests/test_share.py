"""fastfeed.share: one writer, reader processes attached through shared memory.

Readers are real processes (``tests/share_reader.py`` run with this tree on PYTHONPATH); the
writer is a real feed over TLS from the simulator, or a decoder in a child process writing as
fast as it can into a tiny ring.  What is checked: readers get exactly the writer's rows (same
order, same bytes) or count what they lost, never a torn row; a reader killed with SIGKILL
harms nobody; a writer that dies or restarts is detected.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from children import CHILD_CWD, child_env
from feed_fixtures import make_feed, pump
from sim_fixtures import run

import fastfeed
from fastfeed.share import (
    SegmentBusy,
    SegmentNotFound,
    StaleSegment,
    share_decoder,
)
from fastfeed.share.segment import segment_path
from fastfeed.sim import ExchangeSimulator

READER = Path(__file__).with_name("share_reader.py")
#: an aggTrade of trade id %d: the in-process writers' message
TRADE = b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":%d,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}'
pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")


def _name(tag: str) -> str:
    return f"test-{os.getpid()}-{tag}"


def _python(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=CHILD_CWD,
    )


def test_four_readers_get_the_writers_rows_and_a_killed_reader_harms_nobody(tmp_path):
    """A feed from the simulator served to 4 reader processes (one sleeping on the futex, one
    spinning, one polling, one reading with the allocation-free ``wait_into``/``read_into``
    into a 7-row array) and a fifth that is killed with SIGKILL while it reads: each of the
    four ends with exactly the writer's rows of every ring, same order, same bytes, none lost
    (the rings do not wrap here); the writer keeps receiving and frees the dead reader's slot."""
    name = _name("four")
    modes = ["sleep", "into", "spin", "poll"]

    async def main():
        sim = ExchangeSimulator(symbols=["BTCUSDT", "ETHUSDT"], rate=400.0)
        async with sim:
            streams = ["btcusdt@aggTrade", "ethusdt@aggTrade", "btcusdt@depth@100ms"]
            async with make_feed(sim, streams, stream_timeout=None) as feed:
                writer = feed.share(name)
                procs = []
                for i, mode in enumerate([*modes, "sleep"]):
                    procs.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            str(READER),
                            name,
                            mode,
                            str(tmp_path / f"r{i}.json"),
                            env=child_env(),
                            stdout=asyncio.subprocess.PIPE,
                        )
                    )
                victim = procs[-1]
                for p in procs:
                    assert (await asyncio.wait_for(p.stdout.readline(), 30)).strip() == b"attached"
                pump_task = asyncio.ensure_future(pump(feed, 60))
                try:
                    assert (await asyncio.wait_for(victim.stdout.readline(), 30)).strip() == (
                        b"reading"
                    )
                    victim.send_signal(signal.SIGKILL)
                    assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL
                    before = feed.trades.written
                    await asyncio.sleep(2.0)
                    assert feed.trades.written > before + 100  # the writer did not notice
                    assert victim.pid not in writer.stats()["readers"]  # swept by the heartbeat
                finally:
                    pump_task.cancel()
                # The writer's rows, taken with no await before close(): nothing arrives between
                expected = {}
                for rname, ring in writer.rings.items():
                    assert ring.written <= ring.capacity, "the test sizes the rings not to wrap"
                    rows = ring.read(0).rows
                    expected[rname] = (ring.written, hashlib.sha256(rows.tobytes()).hexdigest())
                symbols = list(feed.decoder.symbols)
                writer.close()
                for p in procs[:-1]:
                    assert await asyncio.wait_for(p.wait(), 30) == 0
                return expected, symbols

    expected, symbols = run(main(), timeout=120)
    assert not os.path.exists(segment_path(name))
    assert expected["trades"][0] > 300 and expected["depth"][0] > 50
    for i in range(4):
        got = json.loads((tmp_path / f"r{i}.json").read_text())
        assert "closed by its writer" in got["_error"]
        assert got["_symbols"] == symbols
        for rname, (written, digest) in expected.items():
            r = got[rname]
            assert (r["received"], r["lost"], r["cursor"]) == (written, 0, written), (i, rname)
            assert r["sha256"] == digest, (i, rname, modes[i])


WRITER_FAST = """
    import sys, fastfeed
    from fastfeed.share import share_decoder
    N = 64
    line = ('{"e":"aggTrade","E":%d,"s":"BTCUSDT","a":%d,"p":"%d","q":"%d","f":%d,"l":%d,'
            '"T":%d,"m":true}')
    buf = "\\n".join(line % ((i,) * 7) for i in range(N)).encode()
    dec = fastfeed.BinanceDecoder(trades=8)
    w = share_decoder(sys.argv[1], dec)
    print("ready", flush=True)
    import time
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        for _ in range(20):
            dec.decode_lines(buf)
        w.notify()
        time.sleep(0.0002)  # bursts: overwrites during reads, and rows that live long enough
    print(dec.trades.written, flush=True)
    sys.stdin.readline()
    w.close()
"""


def test_torn_rows_are_never_returned_and_a_slow_reader_counts_exactly_what_it_lost():
    """A writer process overwrites an 8-row ring as fast as its decoder goes (tens of millions
    of rows a minute); this process reads with copies, zero-copy views and read_into, at
    random sizes and pauses, and with a reader's ``read_into`` and ``wait_into``.  Every row returned is whole (its seven id/time/price fields
    agree) and is the row of its sequence number (line ``seq % 64`` of the writer's batch);
    received + lost == written for every reader."""
    name = _name("torn")
    w = _python(WRITER_FAST, name, 1.5)
    try:
        assert w.stdout.readline().strip() == "ready"
        feed = fastfeed.attach(name)
        ring = feed.trades
        rng = np.random.default_rng(5)
        readers = {"copy": ring.reader("oldest"), "view": ring.reader("oldest")}
        start = {n: rd.cursor for n, rd in readers.items()}
        into = {"cursor": 0, "lost": 0, "received": 0}
        rinto = ring.reader("oldest")
        start["rinto"] = rinto.cursor
        out = np.zeros(8, ring.dtype)
        checked = 0

        def check(rows, first_seq):
            nonlocal checked
            seq = np.arange(first_seq, first_seq + len(rows)) % 64
            for f in ("trade_id", "first_id", "last_id", "event_time", "trade_time"):
                np.testing.assert_array_equal(rows[f], seq, err_msg=f)
            np.testing.assert_array_equal(rows["price"], seq.astype(float))
            np.testing.assert_array_equal(rows["qty"], seq.astype(float))
            checked += len(rows)

        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            limit = int(rng.integers(1, 9))
            rows = readers["copy"].read(limit)
            check(rows, readers["copy"].cursor - len(rows))
            rv = readers["view"]
            rows = rv.read(limit, copy=False)
            first = rv.cursor - len(rows)
            snapshot = rows.copy()
            if ring.intact(first):  # the view was not overwritten while we copied it
                check(snapshot, first)
            n, into["cursor"], lost = ring.read_into(out, into["cursor"])
            into["lost"] += lost
            into["received"] += n
            check(out[:n], into["cursor"] - n)
            part = out[: int(rng.integers(1, 9))]
            n = rinto.wait_into(part, 0.0, 0.0) if rng.random() < 0.5 else rinto.read_into(part)
            check(part[:n], rinto.cursor - n)
            if rng.random() < 0.01:
                time.sleep(0.001)
        written = int(w.stdout.readline())
        w.stdin.write("\n")
        w.stdin.flush()
        assert w.wait(10) == 0
        for rd in readers.values():
            with pytest.raises(StaleSegment):
                while True:
                    rows = rd.read()
                    check(rows, rd.cursor - len(rows))
        with pytest.raises(StaleSegment):
            while True:
                n = rinto.read_into(out)
                check(out[:n], rinto.cursor - n)
        readers["rinto"] = rinto
        for n, rd in readers.items():
            assert rd.received + rd.lost == written - start[n]
        while True:
            try:
                n, into["cursor"], lost = ring.read_into(out, into["cursor"])
            except StaleSegment:
                break
            into["lost"] += lost
            into["received"] += n
            check(out[:n], into["cursor"] - n)
        assert into["received"] + into["lost"] == written
        assert written > 100_000 and checked > 1000
        assert readers["copy"].lost > 0  # the writer lapped this reader: counted, not returned
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


WRITER_IDLE = """
    import sys, fastfeed
    from fastfeed.share import share_decoder
    dec = fastfeed.BinanceDecoder(trades=1024)
    line = ('{"e":"aggTrade","E":1,"s":"%s","a":%d,"p":"1","q":"1","f":1,"l":1,"T":1,'
            '"m":true}')
    for i in range(int(sys.argv[2])):
        dec.decode((line % (sys.argv[1], i)).encode())
    w = share_decoder(sys.argv[3], dec)
    w.notify()
    print("ready", w.generation, flush=True)
    sys.stdin.readline()
    w.close()
"""


def test_reader_wait_into_allocates_nothing_and_gets_every_row_in_order():
    """A spinning ``wait_into`` reader (the benchmark's fast reader) beside a writer thread:
    every row arrives once, in order, and the reader's loop allocates no memory block over
    100,000 rows (``sys.getallocatedblocks`` flat); a timeout returns 0; bad arrays are
    refused."""
    import threading

    name = _name("into")
    dec = fastfeed.BinanceDecoder(trades=1024)
    lines = [TRADE % i for i in range(100_000)]
    with share_decoder(name, dec) as w, fastfeed.attach(name) as feed:
        rd = feed.trades.reader("now")
        buf = np.zeros(4, feed.trades.dtype)
        assert rd.wait_into(buf, 0.01) == 0 and rd.cursor == 0
        with pytest.raises(TypeError, match="C-contiguous"):
            rd.read_into(np.zeros(4, fastfeed.DEPTH_DTYPE))
        with pytest.raises(TypeError, match="C-contiguous"):
            rd.wait_into(np.zeros(8, feed.trades.dtype)[::2])
        ids = np.zeros(len(lines), np.int64)

        def write():
            for i, m in enumerate(lines):
                if i % 64 == 0:
                    # The ring holds 1,024 rows: never get more than 576 ahead of the reader,
                    # however the two threads are scheduled (a loaded 2-vCPU CI machine
                    # let the writer lap it when this waited on time alone).
                    while i - rd.cursor > 512:
                        time.sleep(0)
                dec.decode(m)
                w.notify()

        t = threading.Thread(target=write)
        k = 0
        blocks0 = sys.getallocatedblocks()
        t.start()
        while k < len(ids):
            n = rd.wait_into(buf, 5.0, float("inf"))
            if not n:
                break
            ids[k : k + n] = buf["trade_id"][:n]
            k += n
        blocks = sys.getallocatedblocks() - blocks0
        t.join()
        assert rd.lost == 0  # the writer never laps the reader (see write)
        assert k == len(ids) and rd.received == k
        np.testing.assert_array_equal(ids, np.arange(len(ids)))
        assert blocks < 200, blocks  # the thread's own objects; not one per row


def test_a_spinning_wait_lets_the_processs_other_threads_run():
    """A spinning wait holds the GIL only while its thread is the process's one Python
    thread (no thread is then waiting for it).  With a second thread running, the wait spins
    with the GIL released: that thread keeps running throughout.  The switch interval is set
    above the wait's timeout, so a wait that held the GIL would stop the thread for all of it;
    a single-threaded spinning wait still times out and returns rows as before."""
    import threading

    name = _name("gil")
    dec = fastfeed.BinanceDecoder(trades=64)
    interval = sys.getswitchinterval()
    with share_decoder(name, dec) as w, fastfeed.attach(name) as feed:
        ring = feed.trades
        assert ring.wait(0, timeout=0.02, spin=float("inf")) is False  # alone: holds, times out
        dec.decode(TRADE % 1)
        w.notify()
        assert ring.wait(0, timeout=1.0, spin=float("inf")) is True
        worst = [0.0]  # the longest time the other thread went without running
        stop = threading.Event()

        def run_beside() -> None:
            prev = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                worst[0] = max(worst[0], now - prev)
                prev = now

        t = threading.Thread(target=run_beside)
        sys.setswitchinterval(1.0)
        try:
            t.start()
            time.sleep(0.01)
            assert ring.wait(1, timeout=0.4, spin=float("inf")) is False
        finally:
            stop.set()
            t.join()
            sys.setswitchinterval(interval)
        # holding the GIL would have stopped the thread for the whole 0.4 s wait
        assert worst[0] < 0.2, worst[0]


def test_a_polling_reader_gets_every_row_and_costs_the_writer_no_wake_up():
    """A reader that waits with ``poll=`` naps between looks and is never counted as asleep:
    it gets every row in order, and the writer makes no wake-up syscall for it
    (``stats()["wakes"]`` stays 0), where a reader asleep on the futex costs one per notify
    that finds it asleep.  ``feed.wait(poll=...)`` times out and wakes the same way; a poll
    outside 0-1 s is refused."""
    import threading

    name = _name("poll")
    dec = fastfeed.BinanceDecoder(trades=1024)
    with share_decoder(name, dec) as w, fastfeed.attach(name) as feed:

        def read(k: int, poll: float, ids: list[int]) -> None:
            rd = feed.trades.reader("oldest")
            buf = np.zeros(8, feed.trades.dtype)
            while len(ids) < k:
                n = rd.wait_into(buf, 5.0, 0.0, poll)
                if not n:
                    return
                ids.extend(buf["trade_id"][:n].tolist())

        def write(first: int, k: int, reader: threading.Thread) -> None:
            reader.start()
            for i in range(first, first + k):
                time.sleep(0.002)  # let the reader fall asleep between rows
                dec.decode(TRADE % i)
                w.notify()
            reader.join()

        got: list[int] = []
        write(0, 100, threading.Thread(target=read, args=(100, 2e-4, got)))
        assert got == list(range(100))
        assert w.stats()["wakes"] == 0 and w.stats()["notifies"] == 100

        got = []
        write(100, 20, threading.Thread(target=read, args=(120, 0.0, got)))
        assert got == list(range(120))
        assert w.stats()["wakes"] > 0  # the futex sleeper is woken on the writer's time

        assert feed.wait(timeout=0.01, poll=1e-4)  # the notifies since attach
        assert not feed.wait(timeout=0.01, poll=1e-4)
        with pytest.raises(ValueError, match="poll must be between 0 and 1"):
            feed.trades.wait(feed.trades.written, timeout=0.01, poll=2.0)
        with pytest.raises(ValueError, match="poll must be between 0 and 1"):
            feed.wait(timeout=0.01, poll=-1.0)


def test_writer_death_and_restart_are_detected():
    """A writer killed with SIGKILL: a waiting reader raises StaleSegment naming it.  A new
    writer takes the name over (a new generation); the old segment's readers raise
    StaleSegment once they have read what it held, ``reattach()`` follows the new writer.
    A second writer while one lives is refused; a closed writer removes the name."""
    name = _name("restart")
    a = _python(WRITER_IDLE, "AAAUSDT", 5, name)
    b = None
    try:
        _ready, gen_a = a.stdout.readline().split()
        old = fastfeed.attach(name)
        assert old.generation == int(gen_a) and old.writer_alive()
        assert old.symbol(1) == "AAAUSDT"
        rows, cursor, lost = old.trades.read(0)
        assert (len(rows), cursor, lost) == (5, 5, 0)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        with pytest.raises(StaleSegment, match=rf"pid {a.pid}.*exited without closing"):
            old.trades.wait(cursor, timeout=5)
        assert not old.writer_alive()

        b = _python(WRITER_IDLE, "BBBUSDT", 3, name)
        _ready, gen_b = b.stdout.readline().split()
        assert int(gen_b) != old.generation
        assert old.state == "replaced"
        with pytest.raises(StaleSegment, match=r"replaced.*restarted"):
            old.trades.read(cursor)
        new = old.reattach()
        assert new.generation == int(gen_b) and new.writer_pid == b.pid
        assert new.trades.read(0).rows["trade_id"].tolist() == [0, 1, 2]
        assert new.symbol(1) == "BBBUSDT"

        with pytest.raises(SegmentBusy, match=f"pid {b.pid}"):
            share_decoder(name, fastfeed.BinanceDecoder())

        b.stdin.write("\n")
        b.stdin.flush()
        assert b.wait(10) == 0
        with pytest.raises(StaleSegment, match="closed by its writer"):
            new.trades.read(3)
        with pytest.raises(SegmentNotFound, match="fastfeed serve"):
            fastfeed.attach(name)
        new.close()
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_feed_keeps_its_rows_after_close_and_names_are_checked():
    dec = fastfeed.BinanceDecoder(trades=16)
    payload = b'{"e":"aggTrade","E":1,"s":"X","a":%d,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}'
    for i in range(20):
        dec.decode(payload % i)
    before = dec.trades.read(0)
    with share_decoder(_name("local"), dec) as w:
        r = fastfeed.attach(w.name)
        got = r.trades.read(0)
        assert got.rows.tobytes() == before.rows.tobytes() and got.lost == before.lost == 4
        dec.decode(payload % 20)
        assert r.trades.written == 21
        assert r.trades.tail(2)["trade_id"].tolist() == [19, 20]
        with pytest.raises(ValueError, match="already served"):
            share_decoder(_name("local2"), dec)
        assert not os.path.exists(segment_path(_name("local2")))
        r.close()
    assert dec.trades.tail(3)["trade_id"].tolist() == [18, 19, 20]  # the ring lives on
    dec.decode(payload % 21)
    assert dec.trades.written == 22
    for bad in ("", "a/b", "../x", "-x", "x" * 200):
        with pytest.raises(ValueError, match="segment name"):
            share_decoder(bad, dec)
    with pytest.raises(SegmentNotFound):
        fastfeed.attach(_name("absent"))


def test_cli_serve_sim_and_usage_errors(tmp_path):
    """``fastfeed serve --sim --book --name NAME``: its first line names the segment, a reader
    attaches and gets trades, depth rows and book tops with their symbol; at exit the name is
    gone.  No output option, or a bad name, is a usage error (exit 2)."""
    name = _name("cli")
    cmd = [sys.executable, "-m", "fastfeed.cli", "serve"]
    p = subprocess.Popen(
        [*cmd, "--sim", "--book", "--name", name, "--seconds", "5", "--interval", "1"],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
        cwd=CHILD_CWD,
    )
    try:
        first = json.loads(p.stdout.readline())
        assert first["name"] == name and "tops" in first["rings"]
        feed = fastfeed.attach(name)
        deadline = time.monotonic() + 30
        while not (feed.trades.written and feed.depth.written and feed.tops.written):
            assert time.monotonic() < deadline, feed.stats()
            feed.wait(timeout=1.0)
        assert feed.symbol(int(feed.trades.tail(1)["symbol"][0])) == "BTCUSDT"
        assert feed.meta["streams"] == first["streams"]
        feed.close()
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not os.path.exists(segment_path(name))
    for args, msg in (([], "--name NAME"), (["--name", "a/b"], "segment name")):
        r = subprocess.run(
            [*cmd, "--sim", *args], env=child_env(), capture_output=True, text=True, cwd=CHILD_CWD
        )
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_a_replay_serves_its_rows(tmp_path):
    """``Replay.share``: the same mixin as the live feed; a reader gets the replay's rows."""
    from record_fixtures import live_run

    run(live_run(tmp_path / "rec", book=False), 90)
    rp = fastfeed.Replay(tmp_path / "rec")
    with rp.share(_name("replay")) as w:
        reader = fastfeed.attach(w.name)
        rp.run()
        for rname in ("trades", "depth", "events"):
            mine = getattr(rp, rname).read(0)
            got = reader.rings[rname].read(0)
            assert mine.rows.tobytes() == got.rows.tobytes() and mine.lost == got.lost, rname
        assert len(rp.trades.read(0).rows) > 10
        reader.close()
