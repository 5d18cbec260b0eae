/* The compact fast path: Binance's own byte layout, parsed without the general scanner's
 * bookkeeping.  Binance sends objects with no whitespace, short plain keys, no escapes and
 * no key twice; for exactly those payloads this pass fills the same ff_fields that
 * ffb_parse_object would, dispatching on key names just the same (any key order works).
 * At the first byte it does not expect (whitespace, an escape, a non-ASCII symbol, a
 * repeated key, a nested unknown value, any error) it answers FFC_BAIL and the caller
 * runs the general scanner from the start, which decides and counts the outcome.  So the
 * fast path never rejects anything: it cannot change a result, only reach it sooner.
 */
#ifndef FASTFEED_COMPACT_H
#define FASTFEED_COMPACT_H

#include "_binance.h"

#define FFC_BAIL (-1)

#if (defined(__SSE2__) || defined(_M_X64)) && !defined(FF_NO_SIMD)
#define FFC_SSE2 1
#define FFC_SIMD_NAME "sse2"
#include <emmintrin.h>
#else
#define FFC_SIMD_NAME "portable"
#endif

/* Bytes of an 8-byte word that end a plain string run: '"', '\\', < 0x20, >= 0x80.
 * Only the lowest flag is exact (borrows may flag bytes above a real hit). */
static inline uint64_t ffc_special8(uint64_t v) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v) | v) & high;
}

/* A string with no escapes, control or non-ASCII bytes; s->p at its opening quote. */
FF_INLINE int ffc_str(ff_scan *s, const uint8_t **out, ptrdiff_t *n) {
    const uint8_t *st = s->p + 1, *p = st, *end = s->end;
    while (end - p >= 8) {
        uint64_t x = ffc_special8(ff_load8(p));
        if (x) {
            p += ff_ctz64(x) >> 3;
            goto found;
        }
        p += 8;
    }
    while (p < end && ff_str_class[*p] == 0) p++;
found:
    if (p >= end || *p != '"') return FFC_BAIL;
    *out = st;
    *n = p - st;
    s->p = p + 1;
    return 0;
}

/* The symbol "s"; s->p at its opening quote.  The cache slot for the next bytes is checked
 * first with one compare of the name and its closing quote; a miss scans the string. */
FF_INLINE unsigned ffc_symslot(const uint8_t *name) {
    return (unsigned)((ff_load8(name) * 0x9E3779B97F4A7C15ULL) >> 61); /* FF_SYM_SLOTS = 8 */
}

FF_INLINE int ffc_symbol(ff_ctx *c, ff_scan *s, ff_fields *F) {
    if (*s->p != '"') return FFC_BAIL;
    if (s->end - s->p >= 17) {
        unsigned k = ffc_symslot(s->p + 1);
        const ff_symslot *e = &c->sym_cache[k];
        uint32_t n = e->len;
#if FFC_SSE2
        __m128i v = _mm_loadu_si128((const __m128i *)(s->p + 1));
        unsigned eq = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(v, _mm_loadu_si128((const __m128i *)e->pat)));
        unsigned need = (2u << n) - 1; /* the name and its quote */
        int hit = n && (eq & need) == need;
#else
        int hit = n && memcmp(s->p + 1, e->pat, n + 1) == 0;
#endif
        if (hit) {
            F->s_ptr = s->p + 1;
            F->s_len = n;
            F->sym = e->id;
            s->p += n + 2;
            return 0;
        }
        F->sym = FF_SYM_PLAIN;
        F->sym_slot = (int)k;
    } else {
        F->sym = FF_SYM_UNKNOWN;
    }
    return ffc_str(s, &F->s_ptr, &F->s_len);
}

static inline void ffc_forget_symbols(ff_ctx *c) {
    memset(c->sym_cache, 0, sizeof(c->sym_cache));
    c->sym_owner = NULL;
}

/* Caches a plain name that a plan met (FF_SYM_PLAIN: ffc_str accepted it, so it has no
 * quote, escape, control or non-ASCII byte) with its id in the table ``owner``. */
static inline void ffc_remember_symbol(ff_ctx *c, const ff_fields *F, int64_t id,
                                       const void *owner) {
    ptrdiff_t n = F->s_len;
    if (c->sym_owner != owner) { /* another table: forget every id */
        ffc_forget_symbols(c);
        c->sym_owner = owner;
    }
    if (n < 1 || n > 15) return;
    ff_symslot *e = &c->sym_cache[F->sym_slot];
    memset(e->pat, 0, sizeof(e->pat));
    memcpy(e->pat, F->s_ptr, (size_t)n);
    e->pat[n] = '"';
    e->len = (uint32_t)n;
    e->id = id;
}

/* Readers that return where they stopped (NULL: bail) hand it back with this.  The ones
 * that are not inlined take the scan by value: the plans keep their own ff_scan in
 * registers, which passing its address to such a function would prevent. */
FF_INLINE int ffc_to(ff_scan *s, const uint8_t *stop) {
    if (!stop) return FFC_BAIL;
    s->p = stop;
    return 0;
}

/* A literal or a number: the lexer's readers (rare in Binance's payloads, not inlined). */
static const uint8_t *ffc_skip_other(ff_scan t) {
    int r;
    switch (*t.p) {
    case 't': r = ff_skip_literal(&t, "true", 4); break;
    case 'f': r = ff_skip_literal(&t, "false", 5); break;
    case 'n': r = ff_skip_literal(&t, "null", 4); break;
    default:
        if (*t.p != '-' && !ff_is_digit(*t.p)) return NULL;
        r = ff_skip_number(&t);
    }
    return r ? NULL : t.p;
}

/* One plain scalar for a key fastfeed does not use ("M", "X", "ps", ...). */
FF_INLINE int ffc_skip_scalar(ff_scan *s) {
    const uint8_t *st;
    ptrdiff_t n;
    if (*s->p == '"') return ffc_str(s, &st, &n);
    return ffc_to(s, ffc_skip_other(*s));
}

/* Up to 16 ASCII digits at p, which must have 16 readable bytes: returns how many (16
 * means "16 or more": not handled here) and, below 16, their value. */
#if FFC_SSE2
/* 16 x 0xFF then 16 x 0: loading at 16 - n keeps the first n bytes. */
static const uint8_t ffc_keep[32] = {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                                     255, 255, 255, 255, 255, 0,   0,   0,   0,   0,   0,
                                     0,   0,   0,   0,   0,   0,   0,   0,   0,   0};
/* 5**-k modulo 2**64: dividing an exact multiple of 10**k is a shift and a multiply. */
static const uint64_t ffc_inv5[16] = {
    0x0000000000000001ULL, 0xcccccccccccccccdULL, 0x8f5c28f5c28f5c29ULL, 0x1cac083126e978d5ULL,
    0xd288ce703afb7e91ULL, 0x5d4e8fb00bcbe61dULL, 0x790fb65668c26139ULL, 0xe5032477ae8d46a5ULL,
    0xc767074b22e90e21ULL, 0x8e47ce423a2e9c6dULL, 0x4fa7f60d3ed61f49ULL, 0x0fee64690c913975ULL,
    0x3662e0e1cf503eb1ULL, 0xa47a2cf9f6433fbdULL, 0x54186f653140a659ULL, 0x7738164770402145ULL};

/* The number in digit slots 0 .. last-1 of t (one digit value 0..9 per byte; the slots
 * from `last` on are ignored): fold pairwise (10, 100, 10**4) into value * 10**(16-last),
 * then an exact division takes the zeros off. */
FF_INLINE uint64_t ffc_fold16(__m128i t, unsigned last) {
    const __m128i zero = _mm_setzero_si128();
    t = _mm_and_si128(t, _mm_loadu_si128((const __m128i *)(ffc_keep + 16 - last)));
    __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi8(t, zero), _mm_set1_epi32(0x0001000A));
    __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi8(t, zero), _mm_set1_epi32(0x0001000A));
    __m128i x = _mm_madd_epi16(_mm_packs_epi32(lo, hi), _mm_set1_epi32(0x00010064));
    x = _mm_madd_epi16(_mm_packs_epi32(x, x), _mm_set1_epi32(0x00012710));
    uint64_t v16 = (uint64_t)(uint32_t)_mm_cvtsi128_si32(x) * 100000000ULL +
                   (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(x, 4));
    unsigned k = 16 - last;
    return (v16 >> k) * ffc_inv5[k];
}

/* SSE2 (every x86-64): one compare finds the run; the 16 digit slots, the ones past the
 * run zeroed, fold pairwise (10, 100, 10**4) into value * 10**(16-n); an exact division
 * takes the zeros off. */
FF_INLINE unsigned ffc_run(const uint8_t *p, uint64_t *val) {
    const __m128i nine = _mm_set1_epi8(9);
    __m128i d = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)p), _mm_set1_epi8('0'));
    unsigned nondigit =
        ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(d, nine), nine)) & 0xFFFF;
    if (!nondigit) {
        *val = 0;
        return 16;
    }
    unsigned n = (unsigned)ff_ctz32(nondigit);
    if (n == 0) {
        *val = 0;
        return 0;
    }
    *val = ffc_fold16(d, n);
    return n;
}
#else
/* Portable: the lexer's SWAR digit run, stopped at 16. */
FF_INLINE unsigned ffc_run(const uint8_t *p, uint64_t *val) {
    ptrdiff_t n;
    ff_digit_run(p, p + 16, val, &n);
    return (unsigned)n;
}
#endif

/* A non-negative integer of up to 15 digits; what follows it (',' or '}', not '.' or
 * 'e') is the caller's structure check.  Near the end of the buffer, the careful reader. */
static const uint8_t *ffc_uint_near_end(ff_scan t, int64_t *out) {
    return ff_parse_int(&t, out) ? NULL : t.p;
}

FF_INLINE int ffc_uint(ff_scan *s, int64_t *out) {
    uint64_t v;
    if (s->end - s->p < 16) return ffc_to(s, ffc_uint_near_end(*s, out));
    unsigned n = ffc_run(s->p, &v);
    if (n == 0 || n == 16 || (n > 1 && s->p[0] == '0')) return FFC_BAIL;
    s->p += n;
    *out = (int64_t)v;
    return 0;
}

/* A plain decimal string "digits[.digits]" at q (its opening quote): returns where it ends
 * (after the closing quote), or NULL to bail. */
FF_INLINE const uint8_t *ffc_decimal_at(ff_ctx *c, const uint8_t *q, const uint8_t *end,
                                        ff_dec *d) {
#if FFC_SSE2
    const uint8_t *st = q + 1;
    /* One 16-byte pass for the whole decimal (up to 15 characters, the shape of every
     * Binance price and quantity): find the point and the closing quote, slide the integer
     * digits one slot right over the point, and fold all the digits at once as ffc_run does. */
    if (end - st >= 16) {
        const __m128i nine = _mm_set1_epi8(9);
        __m128i raw = _mm_loadu_si128((const __m128i *)st);
        __m128i t = _mm_sub_epi8(raw, _mm_set1_epi8('0'));
        unsigned dig = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(t, nine), nine));
        unsigned dot = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(raw, _mm_set1_epi8('.')));
        unsigned other = ~(dig | dot) & 0xFFFF;
        if (!other) return NULL;                /* 16+ characters: general path */
        unsigned e = (unsigned)ff_ctz32(other); /* the closing quote, if all is well */
        if (st[e] != '"') return NULL;
        dot &= (1u << e) - 1;
        unsigned ic = e, fc = 0;
        if (dot) {
            if (dot & (dot - 1)) return NULL; /* two points */
            ic = (unsigned)ff_ctz32(dot);
            fc = e - ic - 1;
            __m128i keep = _mm_loadu_si128((const __m128i *)(ffc_keep + 16 - (ic + 1)));
            t = _mm_or_si128(_mm_and_si128(keep, _mm_slli_si128(t, 1)), _mm_andnot_si128(keep, t));
        } else {
            t = _mm_slli_si128(t, 1); /* same layout: a zero slot first */
        }
        if (ic == 0) return NULL; /* ".5": the general path decides */
        /* slots 1 .. last-1: the digits; slot 0 zero; past them, zero */
        unsigned last = dot ? e : e + 1;
        uint64_t m = ffc_fold16(t, last);
        return ffb_dec_value(c, st, st + e, m, fc, d) ? NULL : st + e + 1;
    }
#endif
    /* Portable, and near the end of the buffer: the general scanner's reader (SWAR runs). */
    ff_scan t = {q, end};
    return ffb_read_dec(c, &t, d) ? NULL : t.p;
}

/* The same on an ff_scan; s->p at the quote. */
FF_INLINE int ffc_decimal(ff_ctx *c, ff_scan *s, ff_dec *d) {
    return ffc_to(s, ffc_decimal_at(c, s->p, s->end, d));
}

/* Claims a key's slots; a key seen before goes to the general path (last one wins there). */
#define FFC_CLAIM(F, slots)                                                                        \
    do {                                                                                           \
        if ((F)->keys & (slots)) return FFC_BAIL;                                                  \
        (F)->keys |= (slots);                                                                      \
    } while (0)
#define FFC_TRY(x)                                                                                 \
    do {                                                                                           \
        if (x) return FFC_BAIL;                                                                    \
    } while (0)

/* Each field reader claims ``claim`` (the key's slots, as ffb_mark_key would) and marks
 * ``slot`` seen. */
FF_INLINE int ffc_int(ff_scan *s, ff_fields *F, uint32_t claim, uint32_t slot, int64_t *v) {
    FFC_CLAIM(F, claim);
    FFC_TRY(ffc_uint(s, v));
    F->seen |= slot;
    return 0;
}

FF_INLINE int ffc_dec(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t claim, uint32_t slot,
                      ff_dec *d) {
    FFC_CLAIM(F, claim);
    if (*s->p != '"') return FFC_BAIL;
    FFC_TRY(ffc_decimal(c, s, d));
    F->seen |= slot;
    return 0;
}

/* true / false, followed by at least one byte (the object's ',' or '}'). */
FF_INLINE int ffc_read_bool(ff_scan *s, int *v) {
    if (s->end - s->p >= 8) {
        /* Branch-free: buyer_maker is a coin flip that a predictor cannot learn. */
        uint64_t w = ff_load8(s->p);
        int t = (w & 0xFFFFFFFFULL) == 0x65757274ULL;     /* "true" */
        int f = (w & 0xFFFFFFFFFFULL) == 0x65736C6166ULL; /* "false" */
        if (!(t | f)) return FFC_BAIL;
        *v = t;
        s->p += 5 - t;
        return 0;
    }
    if (s->end - s->p >= 5 && memcmp(s->p, "true", 4) == 0) {
        *v = 1;
        s->p += 4;
        return 0;
    }
    if (s->end - s->p >= 6 && memcmp(s->p, "false", 5) == 0) {
        *v = 0;
        s->p += 5;
        return 0;
    }
    return FFC_BAIL;
}

FF_INLINE int ffc_bool(ff_scan *s, ff_fields *F, uint32_t slot, int *v) {
    FFC_CLAIM(F, slot);
    FFC_TRY(ffc_read_bool(s, v));
    F->seen |= slot;
    return 0;
}

static inline int ffc_event(ff_scan *s, ff_fields *F) {
    const uint8_t *p;
    ptrdiff_t n;
    FFC_CLAIM(F, F_EV);
    if (*s->p != '"') return FFC_BAIL;
    FFC_TRY(ffc_str(s, &p, &n));
    F->ev = ffb_event_code(p, n);
    F->seen |= F_EV;
    return 0;
}

/* Two bytes as one native word, and the word two given bytes make. */
FF_INLINE uint16_t ffc_load2(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
FF_INLINE uint16_t ffc_pair(uint8_t a, uint8_t b) {
    const uint8_t t[2] = {a, b};
    return ffc_load2(t);
}
#define FFC_PAIR(a, b) ffc_pair((uint8_t)(a), (uint8_t)(b))

/* [["price","qty"],...] with no whitespace, into staging area st. */
static inline int ffc_levels(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t claim, uint32_t slot,
                             int st) {
    ff_level *lv = ffb_levels(c, F, st);
    ptrdiff_t n = 0, max = c->max_levels;
    const uint8_t *p = s->p + 1, *end = s->end; /* past '[' */
    FFC_CLAIM(F, claim);
    if (p < end && *p == ']') {
        p++;
        goto done;
    }
    /* Two-byte structure checks as one compare each: '["' opens a level, '","' sits
     * between its strings, '],' or ']]' closes it. */
    for (;;) {
        if (end - p < 2 || ffc_load2(p) != FFC_PAIR('[', '"') || n >= max) return FFC_BAIL;
        p = ffc_decimal_at(c, p + 1, end, &lv[n].price);
        if (!p || end - p < 2 || ffc_load2(p) != FFC_PAIR(',', '"')) return FFC_BAIL;
        p = ffc_decimal_at(c, p + 1, end, &lv[n].qty);
        if (!p || end - p < 2) return FFC_BAIL;
        n++;
        uint16_t close = ffc_load2(p);
        p += 2;
        if (close == FFC_PAIR(']', ',')) continue;
        if (close == FFC_PAIR(']', ']')) break;
        return FFC_BAIL;
    }
done:
    s->p = p;
    F->nlv[st] = n;
    F->seen |= slot;
    return 0;
}

static int ffc_object(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner);

/* The compact pass's reader of each kind of key in the key table (FF_KEYS1 / FF_KEYSN of
 * _binance.h); each returns.  Control replies, and the envelope's keys anywhere but at the
 * top level, are left to the general path. */
#define FFC_READ_int(slots, m) return ffc_int(s, F, slots, slots, &F->m)
#define FFC_READ_dec(slots, m) return ffc_dec(c, s, F, slots, slots, &F->m)
#define FFC_READ_bool(slots, m) return ffc_bool(s, F, slots, &F->m)
#define FFC_READ_str(slots, m)                                                                     \
    FFC_CLAIM(F, slots);                                                                           \
    if (v != '"') return FFC_BAIL;                                                                 \
    FFC_TRY(ffc_str(s, &F->m##_ptr, &F->m##_len));                                                 \
    F->seen |= slots;                                                                              \
    return 0
#define FFC_READ_event(slots, m) return ffc_event(s, F)
#define FFC_READ_a(slots, m)                                                                       \
    if (v == '"') return ffc_dec(c, s, F, slots, F_AP, &F->ap);                                    \
    if (v == '[') return ffc_levels(c, s, F, slots, F_AL, ST_A);                                   \
    if (ff_is_digit(v)) return ffc_int(s, F, slots, F_AID, &F->aid);                               \
    return FFC_BAIL
#define FFC_READ_b(slots, m)                                                                       \
    if (v == '"') return ffc_dec(c, s, F, slots, F_BP, &F->bp);                                    \
    if (v == '[') return ffc_levels(c, s, F, slots, F_BL, ST_B);                                   \
    return FFC_BAIL
#define FFC_READ_levels(slots, st)                                                                 \
    if (v != '[') return FFC_BAIL;                                                                 \
    return ffc_levels(c, s, F, slots, slots, st)
#define FFC_READ_ctrl(slots, m) return FFC_BAIL
#define FFC_READ_stream(slots, m)                                                                  \
    if (!inner) return FFC_BAIL;                                                                   \
    FFC_READ_str(slots, m)
#define FFC_READ_data(slots, m)                                                                    \
    if (!inner || v != '{') return FFC_BAIL;                                                       \
    FFC_CLAIM(F, slots);                                                                           \
    FFC_TRY(ffc_object(c, s, inner, NULL));                                                        \
    F->seen |= slots;                                                                              \
    return 0

#define FFC_CASE1(ch, slots, reader, m)                                                            \
    case ch: {                                                                                     \
        FFC_READ_##reader(slots, m);                                                               \
    }
#define FFC_CASEN(name, slots, reader, m)                                                          \
    if (FF_KEY_IS(name)) { FFC_READ_##reader(slots, m); }

/* The value of one key; s->p at the value, which Binance never leaves empty. */
FF_INLINE int ffc_value(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner, const uint8_t *k,
                        ptrdiff_t kn) {
    uint8_t v = *s->p;
    if (kn == 1) {
        switch (k[0]) {
            FF_KEYS1(FFC_CASE1)
        default:
            if (ff_str_class[k[0]]) return FFC_BAIL; /* '"', '\\', control, non-ASCII */
            return ffc_skip_scalar(s);
        }
    }
    FF_KEYSN(FFC_CASEN)
    return ffc_skip_scalar(s); /* "ps" and other plain extras */
}

/* "k": with k one byte, read as one little-endian word: '"' k '"' ':' and, after a
 * value, ',' '"' k '"' ':'. */
#define FFC_KEY4 0x3A220022ULL
#define FFC_KEY4_MASK 0xFFFF00FFULL
#define FFC_NEXT5 0x3A2200222CULL
#define FFC_NEXT5_MASK 0xFFFF00FFFFULL

/* One compact object into F (fresh: nothing seen), s->p at '{'.  0 or FFC_BAIL. */
static int ffc_object(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner) {
    const uint8_t *end = s->end, *p = s->p + 1, *k;
    ptrdiff_t kn;
    if (end - p >= 8 && (ff_load8(p) & FFC_KEY4_MASK) == FFC_KEY4) goto short_key;
    for (;;) {
        /* a longer key (or none: "{}" and the like go to the general path) */
        s->p = p;
        if (p >= end || *p != '"') return FFC_BAIL;
        FFC_TRY(ffc_str(s, &k, &kn));
        if (end - s->p < 2 || *s->p != ':') return FFC_BAIL;
        s->p++;
        goto value;
    short_key:
        k = p + 1;
        kn = 1;
        s->p = p + 4;
    value:
        FFC_TRY(ffc_value(c, s, F, inner, k, kn));
        p = s->p;
        if (end - p >= 8 && (ff_load8(p) & FFC_NEXT5_MASK) == FFC_NEXT5) {
            p++;
            goto short_key;
        }
        if (p >= end) return FFC_BAIL;
        if (*p == '}') {
            s->p = p + 1;
            return 0;
        }
        if (*p != ',') return FFC_BAIL;
        p++;
    }
}

/* ---- Straight-line plans: Binance's exact key orders (as recorded in the corpus), each
 * key checked by name with one word compare, no per-key dispatch.  A plan that meets
 * anything else bails to ffc_object (any order), which bails to the general scanner.
 *
 * Each plan works on its own copy of the caller's ff_scan (FFP_OPEN), which no function
 * that is not inlined ever sees, so the position lives in a register instead of making a
 * store and a reload per field; FFP_DONE hands it back. */

/* The first n (1..8) bytes of lit, zero-padded, as ff_load8 reads them (its first bytes
 * are its low ones); a constant after inlining. */
FF_INLINE uint64_t ffp_head8(const char *lit, size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v |= (uint64_t)(uint8_t)lit[k] << (8 * k);
    return v;
}
/* p[0..n) == lit[0..n) for a constant n, in word compares (a library memcmp call would
 * cost more than the compare); p must have n rounded up to 8 readable bytes. */
FF_INLINE int ffp_eq(const uint8_t *p, const char *lit, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        size_t k = n - i < 8 ? n - i : 8;
        uint64_t keep = k == 8 ? ~0ULL : (1ULL << (8 * k)) - 1;
        if ((ff_load8(p + i) & keep) != ffp_head8(lit + i, k)) return 0;
    }
    return 1;
}
#define FFP_ROUND8(n) (((n) + 7) & ~(size_t)7)

#define FFP_OPEN(io) ff_scan sc_ = *(io), *const s = &sc_
#define FFP_DONE(io)                                                                               \
    do {                                                                                           \
        (io)->p = s->p;                                                                            \
        return 0;                                                                                  \
    } while (0)
/* FFP_EAT_KEY / FFP_EAT: when the bytes at s->p are ,"k": / the literal, step over them
 * and be true; else false, s->p unchanged.  FFP_KEY / FFP_LIT: the same, required. */
#define FFP_NEXT(ch) ((FFC_NEXT5 | ((uint64_t)(uint8_t)(ch) << 16)))
#define FFP_EAT_KEY(ch)                                                                            \
    ((s->end - s->p >= 8 && (ff_load8(s->p) & 0xFFFFFFFFFFULL) == FFP_NEXT(ch)) ? (s->p += 5, 1)   \
                                                                                : 0)
#define FFP_KEY(ch)                                                                                \
    do {                                                                                           \
        if (!FFP_EAT_KEY(ch)) return FFC_BAIL;                                                     \
    } while (0)
#define FFP_EAT(lit)                                                                               \
    ((s->end - s->p >= (ptrdiff_t)FFP_ROUND8(sizeof(lit) - 1) &&                                   \
      ffp_eq(s->p, lit, sizeof(lit) - 1))                                                          \
         ? (s->p += sizeof(lit) - 1, 1)                                                            \
         : 0)
#define FFP_LIT(lit)                                                                               \
    do {                                                                                           \
        if (!FFP_EAT(lit)) return FFC_BAIL;                                                        \
    } while (0)
#define FFP_INT(dst) FFC_TRY(ffc_uint(s, &(dst)))
#define FFP_DEC(dst)                                                                               \
    do {                                                                                           \
        if (*s->p != '"') return FFC_BAIL;                                                         \
        FFC_TRY(ffc_decimal(c, s, &(dst)));                                                        \
    } while (0)
#define FFP_STR(ptr, len)                                                                          \
    do {                                                                                           \
        if (*s->p != '"') return FFC_BAIL;                                                         \
        FFC_TRY(ffc_str(s, &(ptr), &(len)));                                                       \
    } while (0)
#define FFP_SYM() FFC_TRY(ffc_symbol(c, s, F))
#define FFP_SKIP() FFC_TRY(ffc_skip_scalar(s))
/* "M" (aggTrade, spot trade) is always true or false; anything else goes to ffc_object. */
#define FFP_SKIP_BOOL()                                                                            \
    do {                                                                                           \
        int ignored_;                                                                              \
        FFC_TRY(ffc_read_bool(s, &ignored_));                                                      \
    } while (0)
#define FFP_END()                                                                                  \
    do {                                                                                           \
        if (s->p >= s->end || *s->p != '}') return FFC_BAIL;                                       \
        s->p++;                                                                                    \
    } while (0)

/* after {"e":"aggTrade","E": */
static int ffp_aggtrade(ff_ctx *c, ff_scan *io, ff_fields *F) {
    FFP_OPEN(io);
    FFP_INT(F->E);
    if (FFP_EAT_KEY('s')) { /* spot */
        FFP_SYM();
        FFP_KEY('a');
        FFP_INT(F->aid);
    } else { /* futures */
        FFP_KEY('a');
        FFP_INT(F->aid);
        FFP_KEY('s');
        FFP_SYM();
    }
    FFP_KEY('p');
    FFP_DEC(F->p);
    FFP_KEY('q');
    FFP_DEC(F->q);
    FFP_KEY('f');
    FFP_INT(F->first);
    FFP_KEY('l');
    FFP_INT(F->last);
    FFP_KEY('T');
    FFP_INT(F->T);
    FFP_KEY('m');
    FFC_TRY(ffc_read_bool(s, &F->m));
    if (FFP_EAT_KEY('M')) FFP_SKIP_BOOL();
    FFP_END();
    F->ev = EV_AGGTRADE;
    F->seen = REQ_AGG;
    F->keys = F->seen | KEY_A;
    FFP_DONE(io);
}

/* after {"e":"trade","E": */
static int ffp_trade(ff_ctx *c, ff_scan *io, ff_fields *F) {
    FFP_OPEN(io);
    FFP_INT(F->E);
    if (FFP_EAT_KEY('T')) { /* futures */
        FFP_INT(F->T);
        FFP_KEY('s');
        FFP_SYM();
        FFP_KEY('t');
        FFP_INT(F->tid);
        FFP_KEY('p');
        FFP_DEC(F->p);
        FFP_KEY('q');
        FFP_DEC(F->q);
        if (FFP_EAT_KEY('X')) FFP_SKIP();
        FFP_KEY('m');
        FFC_TRY(ffc_read_bool(s, &F->m));
    } else { /* spot */
        FFP_KEY('s');
        FFP_SYM();
        FFP_KEY('t');
        FFP_INT(F->tid);
        FFP_KEY('p');
        FFP_DEC(F->p);
        FFP_KEY('q');
        FFP_DEC(F->q);
        FFP_KEY('T');
        FFP_INT(F->T);
        FFP_KEY('m');
        FFC_TRY(ffc_read_bool(s, &F->m));
        if (FFP_EAT_KEY('M')) FFP_SKIP_BOOL();
    }
    FFP_END();
    F->ev = EV_TRADE;
    F->keys = F->seen = REQ_TRADE;
    FFP_DONE(io);
}

/* after {"e":"depthUpdate","E": */
static int ffp_depth(ff_ctx *c, ff_scan *io, ff_fields *F) {
    FFP_OPEN(io);
    uint32_t opt = 0;
    F->keys = 0; /* ffc_levels claims */
    FFP_INT(F->E);
    if (FFP_EAT_KEY('T')) {
        FFP_INT(F->T);
        opt |= F_T;
    }
    FFP_KEY('s');
    FFP_SYM();
    if (FFP_EAT(",\"ps\":")) FFP_SKIP();
    FFP_KEY('U');
    FFP_INT(F->UU);
    FFP_KEY('u');
    FFP_INT(F->u);
    if (FFP_EAT(",\"pu\":")) {
        FFP_INT(F->pu);
        opt |= F_PU;
    }
    FFP_KEY('b');
    if (*s->p != '[') return FFC_BAIL;
    FFC_TRY(ffc_levels(c, s, F, KEY_B, F_BL, ST_B));
    FFP_KEY('a');
    if (*s->p != '[') return FFC_BAIL;
    FFC_TRY(ffc_levels(c, s, F, KEY_A, F_AL, ST_A));
    FFP_END();
    F->ev = EV_DEPTH;
    F->seen = REQ_DEPTH | opt;
    F->keys = F->seen | KEY_A | KEY_B;
    FFP_DONE(io);
}

/* bookTicker after "u": -- spot {"u":..}, coin-M {"u":..,"e":..}, USD-M {"e":..,"u":..} */
static int ffp_ticker(ff_ctx *c, ff_scan *io, ff_fields *F, uint32_t seen) {
    FFP_OPEN(io);
    FFP_INT(F->u);
    if (FFP_EAT(",\"e\":\"bookTicker\"")) {
        F->ev = EV_BOOKTICKER;
        seen |= F_EV;
    }
    FFP_KEY('s');
    FFP_SYM();
    if (FFP_EAT(",\"ps\":")) FFP_SKIP();
    FFP_KEY('b');
    FFP_DEC(F->bp);
    FFP_KEY('B');
    FFP_DEC(F->bq);
    FFP_KEY('a');
    FFP_DEC(F->ap);
    FFP_KEY('A');
    FFP_DEC(F->aq);
    if (FFP_EAT_KEY('T')) {
        FFP_INT(F->T);
        seen |= F_T;
    }
    if (FFP_EAT_KEY('E')) {
        FFP_INT(F->E);
        seen |= F_E;
    }
    FFP_END();
    F->seen = seen | REQ_TICKER;
    F->keys = F->seen | KEY_A | KEY_B;
    FFP_DONE(io);
}

/* One market-data object in Binance's layout, s->p at '{'.  The event name and the key after
 * it fill the first 17 to 23 bytes: a few word compares (shared between the tests) pick the
 * plan.  On FFC_BAIL, s->p is meaningless: callers start over from the payload. */
FF_INLINE int ffp_message(ff_ctx *c, ff_scan *s, ff_fields *F) {
    if (FFP_EAT("{\"e\":\"aggTrade\",\"E\":")) return ffp_aggtrade(c, s, F);
    if (FFP_EAT("{\"e\":\"depthUpdate\",\"E\":")) return ffp_depth(c, s, F);
    if (FFP_EAT("{\"e\":\"trade\",\"E\":")) return ffp_trade(c, s, F);
    if (FFP_EAT("{\"e\":\"bookTicker\",\"u\":")) {
        F->ev = EV_BOOKTICKER;
        return ffp_ticker(c, s, F, F_EV);
    }
    if (FFP_EAT("{\"u\":")) return ffp_ticker(c, s, F, 0);
    return FFC_BAIL;
}

/* {"stream":..,"data":message}, s->p at the stream name's opening quote. */
static int ffp_combined(ff_ctx *c, ff_scan *io, ff_fields *F, ff_fields *inner) {
    FFP_OPEN(io);
    FFP_STR(F->stream_ptr, F->stream_len);
    FFP_LIT(",\"data\":");
    FFC_TRY(ffp_message(c, s, inner));
    FFP_END();
    F->seen = F->keys = F_STREAM | F_DATA;
    FFP_DONE(io);
}

/* A whole payload: a message, or {"stream":..,"data":message}.  0 or FFC_BAIL. */
static inline int ffp_payload(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner) {
    if (FFP_EAT("{\"stream\":")) return ffp_combined(c, s, F, inner);
    return ffp_message(c, s, F);
}

#endif
