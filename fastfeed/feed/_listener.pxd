# C-level transport listener (see _listener.pyx).
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType
from fastfeed.core._decoder cimport BinanceDecoder
from fastfeed.feed._filter cimport FeedSink


cdef class FeedListener(WSListener):
    cdef readonly FeedSink sink
    cdef readonly BinanceDecoder decoder   # this connection's decoder (shares the sink's rings)
    cdef readonly uint32_t conn_id
    cdef public WSTransport transport
    cdef uint8_t* overlap                  # [sym * N_SLOTS + slot]: this connection caught up
    cdef char* frag
    cdef Py_ssize_t frag_len, frag_cap
    cdef bint in_frag
    cdef readonly uint64_t frames, messages, bytes, fragments, duplicates
    cdef readonly uint64_t late, late_ns      # duplicates that copied the winner, their delay
    cdef readonly int64_t last_msg_ns, connected_ns, batch_start
    cdef readonly int64_t last_ctrl_ns     # last control frame (ping, close, ...) seen here
    cdef readonly int64_t read_gap_ns      # moving average of the time between data reads
    cdef readonly int close_code
    cdef readonly object close_reason
    cdef readonly object protocol_error
    cdef public object on_connected        # cold-path Python callbacks
    cdef public object on_disconnected
    cdef public bint active                # False: drop data (connection being retired)
    cdef public object heard               # a future resolved at the next read's end, or None

    cdef void _heard(self) noexcept

    cdef void _message(self, const char* p, Py_ssize_t n) noexcept
    cdef void replay_message(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef void _fail(self, str why, int code)
    cdef void _name_parser_error(self, WSTransport transport)
