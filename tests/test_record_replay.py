"""Record the simulator through faults, replay, and compare with the live run: the same
payloads, rows, events, and books at every update id."""

from record_fixtures import assert_rows_equal, live_run, ring_rows
from sim_fixtures import run

from fastfeed import BinanceDecoder, EventReason, OrderBook
from fastfeed.record import Recording, Replay
from fastfeed.record import format as fmt


def _replay_all(out, book=True):
    async def body():
        async with Replay(out) as rp:
            ob = None
            if book:
                ob = OrderBook(rp, workers=1, retry_initial=0.02, first_event_wait=0.1)
                await ob.start()
            async for _ in rp:
                pass
            await rp.wait_done()
            if ob is not None:
                ob.poll()
                await ob.close()
            return rp, ob

    return run(body(), 60)


def test_replay_equals_live(tmp_path):
    out = tmp_path / "rec"
    live = run(live_run(out), 90)
    st = live["stats"]
    assert st["reconnects"].get("connection lost", 0) >= 1
    assert st["reconnects"].get("rotation", 0) >= 1
    assert sum(st["gaps"].values()) >= 1
    assert live["recorder"]["dropped"] == 0

    rec = Recording(out)
    assert len(rec.files) >= 2, "files rotate by size"
    assert rec.errors == []
    frames = [r for r in rec.records() if r.kind == fmt.FRAME]
    # the recorded payloads are the messages the live connections decoded: a fresh decoder
    # over them counts the same messages and bytes of every kind
    dec = BinanceDecoder()
    for r in frames:
        dec.decode(r.payload)
    nz = lambda d: {k: v for k, v in d.items() if v}  # noqa: E731
    assert nz(dec.stats()["counts"]) == nz(st["messages"])
    assert nz(dec.stats()["bytes"]) == nz(st["bytes"])

    rp, ob = _replay_all(out)
    assert rp.recording.errors == []
    assert rp.player.frames == len(frames)
    for name in ("trades", "depth", "tickers", "events"):
        got = ring_rows(getattr(rp, name))
        want = live[name]
        assert len(got) == len(want), name
        assert_rows_equal(got, want, name)
    ev = live["events"]
    for reason in (
        EventReason.CONNECT,
        EventReason.DISCONNECT,
        EventReason.ROTATE,
        EventReason.GAP,
    ):
        assert (ev["reason"] == reason).sum() >= 1, reason
    rs = rp.stats()
    assert rs["gaps"] == st["gaps"] and rs["duplicates"] == st["duplicates"]

    # books: at every update id the live book reached, the replayed book is the same
    lt, rt = live["tops"], ring_rows(ob.tops)
    upd_l = lt[lt["code"] == 0] if "code" in lt.dtype.names else lt
    upd_r = rt[rt["code"] == 0] if "code" in rt.dtype.names else rt
    key = lambda t: {(int(r["symbol"]), int(r["update_id"])): r for r in t}  # noqa: E731
    kl, kr = key(upd_l), key(upd_r)
    assert len(kl) > 50
    missing = set(kl) - set(kr)
    assert not missing, f"{len(missing)} update ids the replay never reached"
    fields = [f for f in lt.dtype.names if f not in ("recv_ns",)]
    for k, row in kl.items():
        for f in fields:
            assert row[f] == kr[k][f] or (row[f] != row[f] and kr[k][f] != kr[k][f]), (k, f)
