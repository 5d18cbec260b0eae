# cython: language_level=3
"""A C-level strategy: the volume-weighted average price of every symbol's trades, fed by
fastfeed's consumer API (``fastfeed/feed/consumer.pxd``) with no Python call per read.

    feed = fastfeed.BinanceFeed(["btcusdt@aggTrade", "btcusdt@depth@100ms"])
    async with feed:
        v = vwap.VWAP(feed)            # registers on_read with the feed's sink
        ...
        v.vwap("BTCUSDT")              # sum(price * qty) / sum(qty) since attaching
        v.close()                      # unregisters

``on_read`` runs once per socket read, right after the read's rows were committed, with the
sequence ranges of the new rows of every ring.  It also keeps order-sensitive checksums of
the rows it saw (sum of (k + 1) * id over the k-th row), which the tests compare with the
rings.
"""
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

from fastfeed.core._rows cimport DepthRow, TradeRow
from fastfeed.feed._filter cimport FeedSink
from fastfeed.feed.consumer cimport FF_DEPTH, FF_TRADES, ff_depth, ff_read, ff_trade


cdef struct State:
    uint32_t nsym
    double* pq              # per symbol id: sum(price * qty)
    double* q               # sum(qty)
    uint64_t* n             # trades
    uint64_t reads, trades, depth_rows
    uint64_t trade_sum      # sum over trade rows of (k + 1) * trade_id
    uint64_t depth_sum      # sum over depth rows of (k + 1) * (last_id ^ price_fp)
    uint64_t lost           # rows the rings overwrote before this consumer ran
    uint64_t breaks         # ranges that did not start where the previous one ended
    uint64_t next_trade, next_depth
    bint started


cdef void on_read(void* ctx, const ff_read* rd) noexcept:
    # No Python here: plain C over the rows in the rings' memory.
    cdef State* st = <State*>ctx
    cdef uint64_t seq
    cdef const TradeRow* t
    cdef const DepthRow* d
    st.reads += 1
    if st.started and (rd.rings[FF_TRADES].start - rd.rings[FF_TRADES].lost != st.next_trade
                       or rd.rings[FF_DEPTH].start - rd.rings[FF_DEPTH].lost != st.next_depth):
        st.breaks += 1
    st.started = True
    st.lost += rd.rings[FF_TRADES].lost + rd.rings[FF_DEPTH].lost
    for seq in range(rd.rings[FF_TRADES].start, rd.rings[FF_TRADES].end):
        t = ff_trade(rd, seq)
        st.trades += 1
        st.trade_sum += st.trades * <uint64_t>t.trade_id
        if t.symbol < st.nsym:
            st.pq[t.symbol] += t.price * t.qty
            st.q[t.symbol] += t.qty
            st.n[t.symbol] += 1
    for seq in range(rd.rings[FF_DEPTH].start, rd.rings[FF_DEPTH].end):
        d = ff_depth(rd, seq)
        st.depth_rows += 1
        st.depth_sum += st.depth_rows * (<uint64_t>d.last_id ^ <uint64_t>d.price_fp)
    st.next_trade = rd.rings[FF_TRADES].end
    st.next_depth = rd.rings[FF_DEPTH].end


cdef class VWAP:
    """Per-symbol VWAP of a feed's trades (``feed``: a BinanceFeed or a Replay), from the
    next socket read on.  ``max_symbols``: symbol ids tracked (ids from the feed's table)."""

    cdef State st
    cdef FeedSink sink
    cdef object symbols

    def __cinit__(self, feed, uint32_t max_symbols=1024):
        self.st.nsym = max_symbols
        self.st.pq = <double*>calloc(max_symbols, sizeof(double))
        self.st.q = <double*>calloc(max_symbols, sizeof(double))
        self.st.n = <uint64_t*>calloc(max_symbols, sizeof(uint64_t))
        if not (self.st.pq and self.st.q and self.st.n):
            raise MemoryError()
        self.sink = feed.sink
        self.symbols = feed.decoder.symbols
        # ctx points into this object; the sink keeps the object alive while registered.
        self.sink.add_consumer(on_read, &self.st, self)

    def __dealloc__(self):
        free(self.st.pq)
        free(self.st.q)
        free(self.st.n)

    def close(self):
        """Unregister from the feed (idempotent)."""
        if self.sink is not None:
            self.sink.remove_consumer(on_read, &self.st)
            self.sink = None

    def vwap(self, symbol):
        """sum(price * qty) / sum(qty) of ``symbol``'s trades (a name or an id); NaN if none."""
        cdef int64_t i = symbol if isinstance(symbol, int) else (self.symbols.find(symbol) or -1)
        if i < 0 or i >= self.st.nsym or self.st.q[i] == 0:
            return float("nan")
        return self.st.pq[i] / self.st.q[i]

    def trades_of(self, symbol):
        """Trades of ``symbol`` (a name or an id) seen."""
        cdef int64_t i = symbol if isinstance(symbol, int) else (self.symbols.find(symbol) or -1)
        return 0 if i < 0 or i >= self.st.nsym else self.st.n[i]

    def stats(self):
        """Counters and checksums (see the module's docstring)."""
        return {"reads": self.st.reads, "trades": self.st.trades,
                "depth_rows": self.st.depth_rows, "trade_sum": self.st.trade_sum,
                "depth_sum": self.st.depth_sum, "lost": self.st.lost, "breaks": self.st.breaks}
