# C declarations of fastfeed's JSON lexer (_json.h): allocation-free, sans-IO, plain C.
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t, uint8_t, uint64_t

from fastfeed.core._codes cimport FF_IS_FATAL

cdef extern from "_json.h":
    ctypedef struct ff_scan:
        const uint8_t* p
        const uint8_t* end
    ctypedef double (*ff_strtod_fn)(const char* s, ptrdiff_t n, int* ok) noexcept
    enum:
        FF_MAX_DEPTH
    void ff_skip_ws(ff_scan* s)
    int ff_scan_string(ff_scan* s, const uint8_t** start, ptrdiff_t* length, int* escaped)
    ptrdiff_t ff_unescape(const uint8_t* src, ptrdiff_t n, uint8_t* dst, ptrdiff_t cap)
    int ff_skip_value(ff_scan* s)
    int ff_skip_key(ff_scan* s)
    int ff_skip_literal(ff_scan* s, const char* lit, ptrdiff_t n)
    int ff_parse_int(ff_scan* s, int64_t* out)
    bint ff_bytes_eq(const uint8_t* a, const uint8_t* b, ptrdiff_t n)
    uint64_t ff_hash(const uint8_t* p, ptrdiff_t n)
    int ff_parse_decimal(const uint8_t* p, ptrdiff_t n, double* out_f, int64_t* out_fp,
                         int64_t fp_none, ff_strtod_fn slow)
