# C-level transport listener and the sink it writes through (see _listener.pyx).
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType
from fastfeed.core._decoder cimport BinanceDecoder
from fastfeed.core._ring cimport Ring
from fastfeed.record._tap cimport FrameTap

# Stream slots: one id sequence per (symbol, slot kind).
cdef enum:
    S_AGG = 0
    S_TRADE = 1
    S_DEPTH = 2
    S_TICKER = 3
    S_PARTIAL = 4
    N_SLOTS = 5

# Event (marker) reasons; fastfeed.feed.EventReason mirrors them.
cdef enum:
    EV_GAP = 1          # id sequence jumped (rows missing between two rows)
    EV_CONNECT = 2
    EV_DISCONNECT = 3
    EV_ROTATE = 4       # replacement connection took over
    EV_PROTOCOL = 5     # protocol error on a connection
    EV_SUBSCRIBE = 6
    EV_WATCHDOG = 7

cdef enum:
    N_LAT_BUCKETS = 256

ctypedef struct EventRow:
    int64_t recv_ns
    int64_t trades_pos          # written positions of each data ring when the marker was written
    int64_t depth_pos
    int64_t tickers_pos
    int64_t partial_pos
    int64_t expected_id         # for gaps: next id expected, and the id that arrived
    int64_t got_id
    uint32_t symbol
    uint32_t conn
    uint8_t reason
    uint8_t slot


cdef class FeedSink:
    cdef readonly BinanceDecoder decoder   # the feed's rings and symbol table
    cdef readonly Ring events
    cdef uint32_t nsym
    cdef int64_t* last_id       # [sym * N_SLOTS + slot], -1 = none yet
    cdef int64_t* last_ns
    cdef uint64_t dup[N_SLOTS]
    cdef uint64_t gaps[N_SLOTS]
    cdef uint64_t accepted[N_SLOTS]
    cdef uint64_t lat[N_LAT_BUCKETS]
    cdef uint64_t lat_neg
    cdef public int64_t event_unit_ns   # event_time unit: 1_000_000 (ms) or 1_000 (us)
    cdef uint64_t busy_ns, batches
    cdef readonly uint64_t accepted_total  # messages accepted, all slots (a cheap poll)
    cdef readonly uint64_t unroutable      # messages dropped: symbol id outside the filter's table
    cdef bint dirty
    cdef public bint pending            # consumer has been woken and not yet cleared
    cdef public object wake             # callable() or None, called when pending flips on
    cdef public FrameTap recorder       # fastfeed.record: frames and events copied here, or None

    cdef void mark_c(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                     int64_t expected, int64_t got, int64_t now) noexcept
    cdef inline void latency(self, int64_t now, int64_t event_time) noexcept


cdef class FeedListener(WSListener):
    cdef readonly FeedSink sink
    cdef readonly BinanceDecoder stage     # per-connection decoder sharing the sink's rings
    cdef readonly uint32_t conn_id
    cdef public WSTransport transport
    cdef uint8_t* overlap                  # [sym * N_SLOTS + slot]: this connection caught up
    cdef char* frag
    cdef Py_ssize_t frag_len, frag_cap
    cdef bint in_frag
    cdef readonly uint64_t frames, messages, bytes, fragments, duplicates
    cdef readonly int64_t last_msg_ns, connected_ns, batch_start
    cdef readonly int close_code
    cdef readonly object close_reason
    cdef readonly object protocol_error
    cdef public object on_connected        # cold-path Python callbacks
    cdef public object on_disconnected
    cdef public bint active                # False: drop data (connection being retired)

    cdef void _message(self, const char* p, Py_ssize_t n) noexcept
    cdef void replay_message(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef void _drop_unroutable(self, int k, uint32_t sym) noexcept
    cdef void _end_batch(self) noexcept
    cdef void _fail(self, str why, int code)
