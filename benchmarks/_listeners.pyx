# cython: language_level=3
"""Benchmark-only picows listeners (built on first use by ``_native.build_listeners``).

``CountingListener`` is the floor of any client (count frames, nothing else);
``DecodeListener`` adds fastfeed's decoder alone, with no filter, feed or wake-up.
"""
from libc.stdint cimport int64_t, uint64_t

from picows.picows cimport WSListener, WSTransport, WSFrame
from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport BinanceDecoder


cdef class CountingListener(WSListener):
    """Benchmark baseline: counts frames and bytes at C level and does nothing else."""
    cdef readonly uint64_t frames, bytes
    cdef public object done
    cdef public uint64_t target

    def __cinit__(self):
        self.frames = self.bytes = 0
        self.done = None
        self.target = 0

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        self.frames += 1
        self.bytes += <uint64_t>frame.payload_size
        if self.target and self.frames >= self.target and self.done is not None:
            d = self.done
            self.done = None
            d()


cdef class DecodeListener(WSListener):
    """Benchmark split: decodes every frame into one ``BinanceDecoder`` (clock read once per
    socket read) with no id filter, feed or wake-ups; fastfeed's cost floor for a stream."""
    cdef readonly uint64_t frames
    cdef readonly BinanceDecoder decoder
    cdef public object done
    cdef public uint64_t target
    cdef int64_t now

    def __cinit__(self, BinanceDecoder decoder=None):
        self.frames = 0
        self.decoder = decoder if decoder is not None else BinanceDecoder()
        self.done = None
        self.target = 0
        self.now = 0

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if self.now == 0:
            self.now = ff_now_ns()
        self.decoder.decode_ptr(frame.payload_ptr, frame.payload_size, self.now)
        if frame.last_in_buffer:
            self.now = 0
        self.frames += 1
        if self.target and self.frames >= self.target and self.done is not None:
            d = self.done
            self.done = None
            d()
