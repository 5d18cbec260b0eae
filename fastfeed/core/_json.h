/* fastfeed's JSON lexer: the pieces of a validating JSON scanner that the Binance decoder
 * is built from.  Sans-IO, allocation-free (ff_c_strtod aside, for decimals over 127
 * characters) and plain C (no Python headers; tests/c builds it alone): every function
 * reads [p, end) and moves a cursor; nothing here knows about sockets, rings or Python
 * objects.  The one outside service, the correctly rounded slow
 * path of ff_parse_decimal, is a function the caller passes in (the extension passes
 * CPython's own dtoa, so that results equal Python's float()).
 *
 * Return codes are the Reject codes of _codes.h: FF_OK; 1..4 fatal (the payload is not
 * valid JSON); the rest field-level (valid JSON, wrong for its field).
 */
#ifndef FASTFEED_JSON_H
#define FASTFEED_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_codes.h"
#include "_prefetch.h"

#if defined(_MSC_VER)
#include <intrin.h>
#define FF_INLINE static __forceinline
#define FF_LIKELY(x) (x)
static __forceinline int ff_ctz64(uint64_t x) {
    unsigned long i;
    _BitScanForward64(&i, x);
    return (int)i;
}
static __forceinline int ff_ctz32(uint32_t x) {
    unsigned long i;
    _BitScanForward(&i, x);
    return (int)i;
}
#else
#define FF_INLINE static inline __attribute__((always_inline))
#define FF_LIKELY(x) __builtin_expect(!!(x), 1)
#define ff_ctz64 __builtin_ctzll
#define ff_ctz32 __builtin_ctz
#endif

/* Containers open at once, in all (the payload's own object counts). */
#define FF_MAX_DEPTH 64
#define FF_FP_DECIMALS 8

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} ff_scan;

/* Byte classes inside a string: 0 plain, 1 quote, 2 backslash, 3 control, 4 non-ASCII. */
static const uint8_t ff_str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static inline int ff_is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
static inline int ff_is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }

static inline void ff_skip_ws(ff_scan *s) {
    const uint8_t *p = s->p;
    if (FF_LIKELY(p < s->end && *p > ' ')) return; /* Binance sends none */
    while (p < s->end && ff_is_ws(*p)) p++;
    s->p = p;
}

static inline int ff_hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Validates one UTF-8 sequence starting at p (p[0] >= 0x80) the way Python's strict
 * decoder does (no overlongs, no surrogates, max U+10FFFF).  Returns its length, or
 * -FF_BAD_UTF8 / -FF_TRUNCATED. */
static inline int ff_utf8_seq(const uint8_t *p, const uint8_t *end) {
    uint8_t c = p[0];
    int n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) {
        n = 3;
        lo = 0xA0;
    } else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) {
        n = 3;
        hi = 0x9F;
    } else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) {
        n = 4;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) {
        n = 4;
        hi = 0x8F;
    } else return -FF_BAD_UTF8;
    for (int i = 1; i < n; i++) {
        if (p + i >= end) return -FF_TRUNCATED;
        uint8_t b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -FF_BAD_UTF8;
    }
    return n;
}

/* s->p at the opening quote.  Validates the string (escapes, control characters,
 * UTF-8) and leaves s->p after the closing quote; *start and *len give the raw contents
 * and *escaped says whether they hold backslash escapes. */
static inline int ff_scan_string(ff_scan *s, const uint8_t **start, ptrdiff_t *len, int *escaped) {
    const uint8_t *p = s->p + 1, *end = s->end;
    int esc = 0;
    *start = p;
    for (;;) {
        if (p >= end) return FF_TRUNCATED;
        uint8_t cls = ff_str_class[*p];
        if (cls == 0) {
            p++;
            continue;
        }
        if (cls == 1) break;
        if (cls == 2) {
            esc = 1;
            if (p + 1 >= end) return FF_TRUNCATED;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': p += 2; continue;
            case 'u':
                for (int i = 2; i < 6; i++) {
                    if (p + i >= end) return FF_TRUNCATED;
                    if (ff_hexval(p[i]) < 0) return FF_SYNTAX;
                }
                p += 6;
                continue;
            default: return FF_SYNTAX;
            }
        }
        if (cls == 3) return FF_SYNTAX;
        int n = ff_utf8_seq(p, end);
        if (n < 0) return -n;
        p += n;
    }
    *len = p - *start;
    *escaped = esc;
    s->p = p + 1;
    return FF_OK;
}

static inline uint8_t *ff_put_utf8(uint8_t *d, uint32_t cp) {
    if (cp < 0x80) {
        *d++ = (uint8_t)cp;
    } else if (cp < 0x800) {
        *d++ = 0xC0 | (cp >> 6);
        *d++ = 0x80 | (cp & 0x3F);
    } else if (cp < 0x10000) {
        *d++ = 0xE0 | (cp >> 12);
        *d++ = 0x80 | ((cp >> 6) & 0x3F);
        *d++ = 0x80 | (cp & 0x3F);
    } else {
        *d++ = 0xF0 | (cp >> 18);
        *d++ = 0x80 | ((cp >> 12) & 0x3F);
        *d++ = 0x80 | ((cp >> 6) & 0x3F);
        *d++ = 0x80 | (cp & 0x3F);
    }
    return d;
}

static inline uint32_t ff_hex4(const uint8_t *p) {
    return (uint32_t)(ff_hexval(p[0]) << 12 | ff_hexval(p[1]) << 8 | ff_hexval(p[2]) << 4 |
                      ff_hexval(p[3]));
}

/* Decodes the escapes of an already validated string body into dst (UTF-8; a lone
 * surrogate becomes its 3-byte form, as Python's "surrogatepass" reads it back).
 * Returns the decoded length, or -1 if it does not fit in cap bytes. */
static inline ptrdiff_t ff_unescape(const uint8_t *src, ptrdiff_t n, uint8_t *dst, ptrdiff_t cap) {
    const uint8_t *p = src, *end = src + n;
    uint8_t *d = dst, *dend = dst + cap;
    while (p < end) {
        if (dend - d < 4) return -1;
        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }
        uint8_t c = p[1];
        p += 2;
        switch (c) {
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            uint32_t cp = ff_hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = ff_hex4(p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            d = ff_put_utf8(d, cp);
            break;
        }
        default: *d++ = c; /* " \ / */
        }
    }
    return d - dst;
}

/* Number grammar of RFC 8259; s->p at '-' or a digit. */
static inline int ff_skip_number(ff_scan *s) {
    const uint8_t *p = s->p, *end = s->end;
    if (*p == '-') {
        p++;
        if (p >= end) return FF_TRUNCATED;
    }
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < end && ff_is_digit(*p)) p++;
    } else return FF_SYNTAX;
    if (p < end && *p == '.') {
        p++;
        if (p >= end) return FF_TRUNCATED;
        if (!ff_is_digit(*p)) return FF_SYNTAX;
        while (p < end && ff_is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end) return FF_TRUNCATED;
        if (!ff_is_digit(*p)) return FF_SYNTAX;
        while (p < end && ff_is_digit(*p)) p++;
    }
    s->p = p;
    return FF_OK;
}

static inline int ff_skip_literal(ff_scan *s, const char *lit, ptrdiff_t n) {
    ptrdiff_t avail = s->end - s->p;
    if (avail < n) return memcmp(s->p, lit, avail) == 0 ? FF_TRUNCATED : FF_SYNTAX;
    if (memcmp(s->p, lit, n) != 0) return FF_SYNTAX;
    s->p += n;
    return FF_OK;
}

/* A scalar value (string, number, literal) at s->p. */
static inline int ff_skip_scalar(ff_scan *s) {
    const uint8_t *st;
    ptrdiff_t n;
    int esc;
    switch (*s->p) {
    case '"': return ff_scan_string(s, &st, &n, &esc);
    case 't': return ff_skip_literal(s, "true", 4);
    case 'f': return ff_skip_literal(s, "false", 5);
    case 'n': return ff_skip_literal(s, "null", 4);
    default:
        if (*s->p == '-' || ff_is_digit(*s->p)) return ff_skip_number(s);
        return FF_SYNTAX;
    }
}

/* Object key: s->p at the quote (checked here); leaves s->p after the ':' and spaces. */
static inline int ff_skip_key(ff_scan *s) {
    const uint8_t *st;
    ptrdiff_t n;
    int esc, r;
    if (s->p >= s->end) return FF_TRUNCATED;
    if (*s->p != '"') return FF_SYNTAX;
    if ((r = ff_scan_string(s, &st, &n, &esc))) return r;
    ff_skip_ws(s);
    if (s->p >= s->end) return FF_TRUNCATED;
    if (*s->p != ':') return FF_SYNTAX;
    s->p++;
    ff_skip_ws(s);
    return FF_OK;
}

/* Validates and skips any JSON value without recursion.  ``open`` containers are already
 * open around it: the value may open FF_MAX_DEPTH - open more. */
static int ff_skip_value_in(ff_scan *s, int open) {
    uint64_t is_obj = 0; /* bit d: container at depth d is an object */
    int depth = 0, r;
    const int max_depth = FF_MAX_DEPTH - open;
    ff_skip_ws(s);
    for (;;) {
        /* at a value */
        if (s->p >= s->end) return FF_TRUNCATED;
        uint8_t c = *s->p;
        if (c == '{' || c == '[') {
            if (depth >= max_depth) return FF_TOO_DEEP;
            int obj = c == '{';
            if (obj) is_obj |= (1ULL << depth);
            else is_obj &= ~(1ULL << depth);
            depth++;
            s->p++;
            ff_skip_ws(s);
            if (s->p >= s->end) return FF_TRUNCATED;
            if (*s->p == (obj ? '}' : ']')) {
                s->p++;
                depth--;
                goto after_value;
            }
            if (obj && (r = ff_skip_key(s))) return r;
            continue;
        }
        if ((r = ff_skip_scalar(s))) return r;
    after_value:
        for (;;) {
            if (depth == 0) return FF_OK;
            ff_skip_ws(s);
            if (s->p >= s->end) return FF_TRUNCATED;
            int obj = (is_obj >> (depth - 1)) & 1;
            c = *s->p;
            if (c == ',') {
                s->p++;
                ff_skip_ws(s);
                if (obj && (r = ff_skip_key(s))) return r;
                break; /* next value */
            }
            if (c == (obj ? '}' : ']')) {
                s->p++;
                depth--;
                continue;
            }
            return FF_SYNTAX;
        }
        ff_skip_ws(s);
    }
}

/* A whole value with nothing open around it (a top-level value). */
static inline int ff_skip_value(ff_scan *s) { return ff_skip_value_in(s, 0); }

static const double ff_pow10_f[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const uint64_t ff_pow10_u[20] = {1ULL,
                                        10ULL,
                                        100ULL,
                                        1000ULL,
                                        10000ULL,
                                        100000ULL,
                                        1000000ULL,
                                        10000000ULL,
                                        100000000ULL,
                                        1000000000ULL,
                                        10000000000ULL,
                                        100000000000ULL,
                                        1000000000000ULL,
                                        10000000000000ULL,
                                        100000000000000ULL,
                                        1000000000000000ULL,
                                        10000000000000000ULL,
                                        100000000000000000ULL,
                                        1000000000000000000ULL,
                                        10000000000000000000ULL};

/* INT64_MAX / 10**k: the largest m with m * 10**k still in int64. */
static const uint64_t ff_int64_div10[19] = {9223372036854775807ULL,
                                            922337203685477580ULL,
                                            92233720368547758ULL,
                                            9223372036854775ULL,
                                            922337203685477ULL,
                                            92233720368547ULL,
                                            9223372036854ULL,
                                            922337203685ULL,
                                            92233720368ULL,
                                            9223372036ULL,
                                            922337203ULL,
                                            92233720ULL,
                                            9223372ULL,
                                            922337ULL,
                                            92233ULL,
                                            9223ULL,
                                            922ULL,
                                            92ULL,
                                            9ULL};

/* Eight ASCII digits at once (SWAR): is every byte '0'..'9', and their value. */
static inline uint64_t ff_load8(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline uint32_t ff_load4(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* a[:n] == b[:n] for short names without a library call; reads only inside both. */
FF_INLINE int ff_bytes_eq(const uint8_t *a, const uint8_t *b, ptrdiff_t n) {
    if (n >= 8) {
        if (n > 16) return memcmp(a, b, n) == 0;
        return ff_load8(a) == ff_load8(b) && ff_load8(a + n - 8) == ff_load8(b + n - 8);
    }
    if (n >= 4) return ff_load4(a) == ff_load4(b) && ff_load4(a + n - 4) == ff_load4(b + n - 4);
    for (ptrdiff_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* A hash of a short name from at most two overlapping words (FNV-1a beyond 16 bytes). */
FF_INLINE uint64_t ff_hash(const uint8_t *p, ptrdiff_t n) {
    uint64_t a, b, h;
    if (n > 16) {
        h = 1469598103934665603ULL;
        for (ptrdiff_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
        return h;
    }
    if (n >= 8) {
        a = ff_load8(p);
        b = ff_load8(p + n - 8);
    } else if (n >= 4) {
        a = ff_load4(p);
        b = ff_load4(p + n - 4);
    } else {
        a = n ? (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16 : 0;
        b = 0;
    }
    h = ((a ^ 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL) ^
        ((b + (uint64_t)n) * 0x94D049BB133111EBULL);
    return h ^ (h >> 31);
}

FF_INLINE uint32_t ff_digits8_value(uint64_t v) {
    v -= 0x3030303030303030ULL;
    v = (v * 10) + (v >> 8); /* pairs */
    v = (((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
         (((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >>
        32;
    return (uint32_t)v;
}

/* Flags (non-zero bytes) marking which of 8 bytes are not ASCII digits.  A carry out of
 * a byte >= 0xFA only disturbs bytes after it, never the first non-digit's position. */
FF_INLINE uint64_t ff_nondigit8(uint64_t v) {
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL) |
           (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL);
}

/* The value of the first n (1..7) digits of word w: they move to the top, '0's fill in. */
FF_INLINE uint32_t ff_digits_value(uint64_t w, unsigned n) {
    return ff_digits8_value((w << (64 - 8 * n)) | (0x3030303030303030ULL >> (8 * n)));
}

/* A run of ASCII digits from p: returns where it stops.  *val holds its value when the
 * run has at most 19 digits (*count says how many).  Eight bytes at a time while the
 * buffer allows; a partial word is right-aligned behind '0' bytes and read in one go. */
FF_INLINE const uint8_t *ff_digit_run(const uint8_t *p, const uint8_t *end, uint64_t *val,
                                      ptrdiff_t *count) {
    const uint8_t *st = p;
    uint64_t v = 0;
    while (end - p >= 8) {
        uint64_t w = ff_load8(p);
        uint64_t x = ff_nondigit8(w);
        if (!x) {
            v = v * 100000000ULL + ff_digits8_value(w);
            p += 8;
            continue;
        }
        unsigned n = (unsigned)ff_ctz64(x) >> 3;
        if (n) {
            v = v * ff_pow10_u[n] + ff_digits_value(w, n);
            p += n;
        }
        *val = v;
        *count = p - st;
        return p;
    }
    while (p < end && ff_is_digit(*p)) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *val = v;
    *count = p - st;
    return p;
}

/* A JSON integer into int64.  s->p at the value's first byte.  FF_BAD_NUMBER outside
 * int64, FF_WRONG_TYPE for a float: both leave s->p after the number, so the caller can
 * go on.  A value that is not a number at all (s->p not at '-' or a digit) is FF_WRONG_TYPE
 * with s->p unmoved: the caller skips it (it knows how deep it is). */
FF_INLINE int ff_parse_int(ff_scan *s, int64_t *out) {
    const uint8_t *p = s->p, *end = s->end;
    int neg = 0, over = 0;
    uint64_t v = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end) return FF_TRUNCATED;
    if (*p == '0') {
        p++;
        if (p < end && ff_is_digit(*p)) return FF_SYNTAX;
    } else if (*p >= '1' && *p <= '9') {
        /* Up to 18 digits cannot overflow; only longer runs need the careful check. */
        const uint8_t *first = p;
        ptrdiff_t nd;
        p = ff_digit_run(p, end, &v, &nd);
        if (nd > 18) {
            const uint64_t lim = neg ? (1ULL << 63) : (uint64_t)INT64_MAX;
            v = 0;
            for (const uint8_t *q = first; q < p; q++) {
                uint64_t d = *q - '0';
                if (v > (lim - d) / 10) {
                    over = 1;
                    break;
                }
                v = v * 10 + d;
            }
        }
    } else {
        return neg ? FF_SYNTAX : FF_WRONG_TYPE;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
        int r = ff_skip_number(s);
        return r ? r : FF_WRONG_TYPE;
    }
    s->p = p;
    if (over) return FF_BAD_NUMBER;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return FF_OK;
}

/* The correctly rounded conversion of a decimal string s[:n] that ff_parse_decimal falls
 * back to when its fast path cannot round exactly; sets *ok when all of s[:n] was read.
 * The extension passes CPython's dtoa (the one float() uses, independent of the C locale);
 * ff_c_strtod, C's strtod, serves plain-C builds. */
typedef double (*ff_strtod_fn)(const char *s, ptrdiff_t n, int *ok);

/* inline: unused in the extension, and -Wunused-function (-Werror builds) ignores inline. */
static inline double ff_c_strtod(const char *s, ptrdiff_t n, int *ok) {
    char buf[128];
    char *copy = n < (ptrdiff_t)sizeof(buf) ? buf : (char *)malloc((size_t)n + 1);
    char *endp = NULL;
    double f = 0.0;
    *ok = 0;
    if (!copy) return 0.0;
    memcpy(copy, s, (size_t)n);
    copy[n] = 0;
    f = strtod(copy, &endp);
    *ok = endp == copy + n;
    if (copy != buf) free(copy);
    return f;
}

/* A decimal string body (no quotes) such as "16843.55000000" into a float64 equal to
 * Python's float() of it and an exact int64 at scale 10**8 (fp_none where the value has
 * no exact int64 at that scale).  Grammar: [+-]? (digits [. digits*] | . digits)
 * ([eE] [+-]? digits)?  -- a subset of what float() accepts.  ``slow``: see ff_strtod_fn. */
static inline int ff_parse_decimal(const uint8_t *p, ptrdiff_t n, double *out_f, int64_t *out_fp,
                                   int64_t fp_none, ff_strtod_fn slow) {
    const uint8_t *q = p, *end = p + n;
    int neg = 0, any = 0, dropped = 0, nd = 0;
    uint64_t m = 0;
    int64_t e10 = 0;
    if (q < end && (*q == '-' || *q == '+')) {
        neg = *q == '-';
        q++;
    }
    {
        /* Common case first: digits [. digits] with at most 19 digits in all, which
         * fits m exactly; anything else takes the digit-by-digit loop below. */
        uint64_t iv, fv = 0;
        ptrdiff_t ic, fc = 0;
        const uint8_t *r = ff_digit_run(q, end, &iv, &ic);
        if (r < end && *r == '.') r = ff_digit_run(r + 1, end, &fv, &fc);
        if (r == end && ic + fc > 0 && ic + fc <= 19 && ic <= 19) {
            m = ic ? iv * ff_pow10_u[fc] + fv : fv;
            e10 = -fc;
            any = 1;
            q = end;
            goto have_digits;
        }
    }
    while (q < end && ff_is_digit(*q)) {
        uint32_t d = *q++ - '0';
        any = 1;
        if (nd < 19) {
            m = m * 10 + d;
            if (m) nd++;
        } else {
            e10++;
            if (d) dropped = 1;
        }
    }
    if (q < end && *q == '.') {
        q++;
        while (q < end && ff_is_digit(*q)) {
            uint32_t d = *q++ - '0';
            any = 1;
            if (nd < 19) {
                m = m * 10 + d;
                e10--;
                if (m) nd++;
            } else if (d) dropped = 1;
        }
    }
    if (!any) return FF_BAD_NUMBER;
have_digits:
    if (q < end && (*q == 'e' || *q == 'E')) {
        int eneg = 0;
        int64_t ev = 0;
        q++;
        if (q < end && (*q == '-' || *q == '+')) {
            eneg = *q == '-';
            q++;
        }
        if (q >= end || !ff_is_digit(*q)) return FF_BAD_NUMBER;
        while (q < end && ff_is_digit(*q)) {
            if (ev < 100000000) ev = ev * 10 + (*q - '0');
            q++;
        }
        e10 += eneg ? -ev : ev;
    }
    if (q != end) return FF_BAD_NUMBER;

    /* float64 */
    if (m == 0) {
        *out_f = neg ? -0.0 : 0.0;
    } else if (!dropped && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        /* Clinger's fast path: both operands exact, one IEEE operation rounds correctly. */
        double f = (double)m;
        f = e10 < 0 ? f / ff_pow10_f[-e10] : f * ff_pow10_f[e10];
        *out_f = neg ? -f : f;
    } else {
        int ok;
        double f = slow((const char *)p, n, &ok);
        if (!ok) return FF_BAD_NUMBER;
        *out_f = f;
    }

    /* int64 fixed point at 10**-8 */
    if (m == 0) {
        *out_fp = 0;
    } else {
        int64_t sh = e10 + FF_FP_DECIMALS;
        uint64_t v = 0;
        int exact = !dropped;
        if (exact) {
            if (sh >= 0) {
                if (sh > 18 || m > ff_int64_div10[sh]) exact = 0;
                else v = m * ff_pow10_u[sh];
            } else if (-sh > 19 || m % ff_pow10_u[-sh] != 0) {
                exact = 0;
            } else {
                v = m / ff_pow10_u[-sh];
            }
        }
        if (exact && v <= (uint64_t)INT64_MAX) {
            *out_fp = neg ? -(int64_t)v : (int64_t)v;
        } else {
            *out_fp = fp_none;
        }
    }
    return FF_OK;
}

#endif
