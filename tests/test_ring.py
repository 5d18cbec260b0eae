"""Ring buffer semantics: wrap-around, exact loss accounting, tail, read, readers."""

import numpy as np
import pytest

import fastfeed
from fastfeed import Kind, Ring


def trade(i):
    return (
        '{"e":"trade","E":%d,"s":"X","t":%d,"p":"1.5","q":"2","T":1,"m":false}' % (i, i)
    ).encode()


def fill(dec, start, n):
    for i in range(start, start + n):
        assert dec.decode(trade(i)) == Kind.TRADE


def test_capacity_must_be_power_of_two():
    for bad in (0, 3, 100, -8):
        with pytest.raises(ValueError):
            Ring(fastfeed.TRADE_DTYPE, bad)
    r = Ring(fastfeed.TRADE_DTYPE, 8)
    assert r.capacity == 8 and r.written == 0 and len(r) == 0 and r.dtype == fastfeed.TRADE_DTYPE


def test_read_returns_rows_since_cursor_without_copy():
    dec = fastfeed.BinanceDecoder(trades=16)
    fill(dec, 0, 5)
    rows, cur, lost = dec.trades.read(0)
    assert list(rows["trade_id"]) == [0, 1, 2, 3, 4] and cur == 5 and lost == 0
    assert np.shares_memory(rows, dec.trades.array)  # zero-copy while contiguous
    assert not rows.flags.writeable
    rows, cur, lost = dec.trades.read(cur)
    assert len(rows) == 0 and cur == 5 and lost == 0


def test_wrap_around_copies_and_keeps_order():
    dec = fastfeed.BinanceDecoder(trades=8)
    fill(dec, 0, 6)
    _, cur, _ = dec.trades.read(0)
    fill(dec, 6, 5)  # rows 6..10 wrap past the end
    rows, cur2, lost = dec.trades.read(cur)
    assert list(rows["trade_id"]) == [6, 7, 8, 9, 10] and cur2 == 11 and lost == 0
    assert not np.shares_memory(rows, dec.trades.array)
    assert rows.dtype == fastfeed.TRADE_DTYPE and rows.dtype.itemsize == dec.trades.itemsize


def test_slow_reader_is_told_exactly_how_many_rows_it_lost():
    dec = fastfeed.BinanceDecoder(trades=8)
    fill(dec, 0, 3)
    _, cur, _ = dec.trades.read(0)  # cursor at 3
    fill(dec, 3, 20)  # 23 written, oldest kept = 15
    rows, cur, lost = dec.trades.read(cur)
    assert lost == 12  # rows 3..14 were overwritten
    assert list(rows["trade_id"]) == list(range(15, 23)) and cur == 23
    assert dec.trades.oldest == 15


def test_read_limit_and_bad_cursor():
    dec = fastfeed.BinanceDecoder(trades=8)
    fill(dec, 0, 6)
    rows, cur, lost = dec.trades.read(1, limit=2)
    assert list(rows["trade_id"]) == [1, 2] and cur == 3 and lost == 0
    with pytest.raises(ValueError):
        dec.trades.read(7)
    with pytest.raises(ValueError):
        dec.trades.read(-1)


def test_tail_is_a_copy_oldest_first():
    dec = fastfeed.BinanceDecoder(trades=8)
    fill(dec, 0, 11)
    t = dec.trades.tail(5)
    assert list(t["trade_id"]) == [6, 7, 8, 9, 10]
    assert t.flags.writeable and not np.shares_memory(t, dec.trades.array)
    assert len(dec.trades.tail(100)) == 8
    assert len(dec.trades.tail(0)) == 0


def test_copies_are_byte_exact_padding_included():
    # numpy copies a dtype with holes field by field and leaves the holes (the rows' tail
    # padding) as whatever the heap held: tobytes() of a copy would then differ from the
    # ring's own bytes.  Dirty the heap before every copy so a stale byte would show.
    dec = fastfeed.BinanceDecoder(trades=8)
    fill(dec, 0, 11)  # rows 3..10 held; the oldest at slot 3, so 5 rows wrap
    raw = dec.trades.array.view(np.uint8).reshape(8, -1)
    order = [(s & 7) for s in range(3, 11)]
    for k in (1, 3, 5, 8):
        for _ in range(50):
            junk = np.full(k * dec.trades.itemsize, 0xA5, np.uint8).copy()
            del junk
            want = b"".join(raw[i].tobytes() for i in order[8 - k :])
            assert dec.trades.tail(k).tobytes() == want
    rows, _, _ = dec.trades.read(3)  # wrapped: a copy joined from two parts
    assert rows.tobytes() == b"".join(raw[i].tobytes() for i in order)


def test_ring_reader_totals_losses():
    dec = fastfeed.BinanceDecoder(trades=4)
    reader = dec.trades.reader("oldest")
    fill(dec, 0, 3)
    assert list(reader.read()["trade_id"]) == [0, 1, 2]
    fill(dec, 3, 10)
    assert list(reader.read()["trade_id"]) == [9, 10, 11, 12]
    assert reader.lost == 6 and reader.pending == 0


def test_multi_row_messages_never_leave_half_rows():
    dec = fastfeed.BinanceDecoder(depth=8)
    levels = ",".join('["%d","1"]' % i for i in range(5))
    msg = ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[%s],"a":[]}' % levels).encode()
    assert dec.decode(msg) == Kind.DEPTH and dec.depth.written == 5
    bad = msg.replace(b'"u":2', b'"u":"2"')
    assert dec.decode(bad) == Kind.ERROR and dec.depth.written == 5
    assert list(dec.depth.tail(5)["price"]) == [0, 1, 2, 3, 4]
