# C declarations of fastfeed's JSON lexer (_json.h): allocation-free, sans-IO.
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "_json.h":
    ctypedef struct ff_scan:
        const uint8_t* p
        const uint8_t* end
    bint FF_IS_FATAL(int r)
    void ff_skip_ws(ff_scan* s)
    int ff_scan_string(ff_scan* s, const uint8_t** start, Py_ssize_t* length, int* escaped)
    Py_ssize_t ff_unescape(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap)
    int ff_skip_value(ff_scan* s)
    int ff_skip_key(ff_scan* s)
    int ff_skip_literal(ff_scan* s, const char* lit, Py_ssize_t n)
    int ff_parse_int(ff_scan* s, int64_t* out)
    bint ff_bytes_eq(const uint8_t* a, const uint8_t* b, Py_ssize_t n)
    uint64_t ff_hash(const uint8_t* p, Py_ssize_t n)
    int ff_parse_decimal(const uint8_t* p, Py_ssize_t n, double* out_f, int64_t* out_fp,
                         int64_t fp_none, int* inexact_fp)
