/* The Binance payload scanner: one validating pass over a JSON object that collects the
 * fields fastfeed knows into an ff_fields struct, dispatching on key names (never on key
 * order) and skipping everything else.  Written in C so that the cursor lives in a
 * register across the whole object; _decoder.pyx classifies the result and writes rows.
 */
#ifndef FASTFEED_BINANCE_H
#define FASTFEED_BINANCE_H

#include "_json.h"

/* Event types ("e"). */
enum { EV_NONE = 0, EV_AGGTRADE, EV_TRADE, EV_DEPTH, EV_BOOKTICKER, EV_SHUTDOWN, EV_OTHER };

/* Field slots, one bit each.  Keys "a" and "b" carry different JSON types in different
 * events (aggregate trade id, ask price, ask levels), so each owns several slots. */
enum {
    F_E = 1u << 0,
    F_T = 1u << 1,
    F_S = 1u << 2,
    F_AID = 1u << 3,
    F_TID = 1u << 4,
    F_P = 1u << 5,
    F_Q = 1u << 6,
    F_FIRST = 1u << 7,
    F_LAST = 1u << 8,
    F_M = 1u << 9,
    F_UU = 1u << 10,
    F_U = 1u << 11,
    F_PU = 1u << 12,
    F_BL = 1u << 13,
    F_AL = 1u << 14,
    F_BP = 1u << 15,
    F_BQ = 1u << 16,
    F_AP = 1u << 17,
    F_AQ = 1u << 18,
    F_NQ = 1u << 19,
    F_LUID = 1u << 20,
    F_BIDS = 1u << 21,
    F_ASKS = 1u << 22,
    F_EV = 1u << 23,
    F_CTRL = 1u << 24,
    F_DATA = 1u << 25,
    F_STREAM = 1u << 26
};
#define KEY_A (F_AID | F_AL | F_AP)
#define KEY_B (F_BL | F_BP)
enum { FF_SYM_UNKNOWN = -1, FF_SYM_PLAIN = -2 };
enum { ST_B = 0, ST_A = 1, ST_BIDS = 2, ST_ASKS = 3 };

/* The key table: every key fastfeed gives a meaning to, the slots it claims, how its value
 * is read and where it goes.  ffb_dispatch (the general scanner) and ffc_value (the
 * compact pass) both expand from it; nothing else names a key (the plans spell Binance's
 * byte layout, and fill the masks below).
 *
 * One-byte keys: X(char, slots, reader, ff_fields member).  Readers: int, dec, bool, str
 * (member##_ptr / member##_len), event ("e"), a and b (their value's type picks the slot). */
#define FF_KEYS1(X)                                                                                \
    X('e', F_EV, event, ev)                                                                        \
    X('E', F_E, int, E)                                                                            \
    X('T', F_T, int, T)                                                                            \
    X('s', F_S, str, s)                                                                            \
    X('p', F_P, dec, p)                                                                            \
    X('q', F_Q, dec, q)                                                                            \
    X('f', F_FIRST, int, first)                                                                    \
    X('l', F_LAST, int, last)                                                                      \
    X('t', F_TID, int, tid)                                                                        \
    X('m', F_M, bool, m)                                                                           \
    X('U', F_UU, int, UU)                                                                          \
    X('u', F_U, int, u)                                                                            \
    X('B', F_BQ, dec, bq)                                                                          \
    X('A', F_AQ, dec, aq)                                                                          \
    X('a', KEY_A, a, ap)                                                                           \
    X('b', KEY_B, b, bp)
/* Longer keys: X(name, slots, reader, member or staging area).  More readers:
 * levels ([[price, qty], ...] into a staging area), stream and data (the combined-stream
 * envelope, top level only), ctrl (marks a control reply; the value is skipped). */
#define FF_KEYSN(X)                                                                                \
    X("pu", F_PU, int, pu)                                                                         \
    X("nq", F_NQ, dec, nq)                                                                         \
    X("id", F_CTRL, ctrl, _)                                                                       \
    X("msg", F_CTRL, ctrl, _)                                                                      \
    X("bids", F_BIDS, levels, ST_BIDS)                                                             \
    X("asks", F_ASKS, levels, ST_ASKS)                                                             \
    X("data", F_DATA, data, _)                                                                     \
    X("code", F_CTRL, ctrl, _)                                                                     \
    X("error", F_CTRL, ctrl, _)                                                                    \
    X("stream", F_STREAM, stream, stream)                                                          \
    X("result", F_CTRL, ctrl, _)                                                                   \
    X("lastUpdateId", F_LUID, int, luid)

/* Fields each kind requires, and the optional ones it uses when present.  The plans set
 * exactly these (they read every required field of their kind). */
enum {
    REQ_AGG = F_EV | F_E | F_S | F_AID | F_P | F_Q | F_FIRST | F_LAST | F_T | F_M,
    OPT_AGG = F_NQ,
    REQ_TRADE = F_EV | F_E | F_S | F_TID | F_P | F_Q | F_T | F_M,
    REQ_DEPTH = F_EV | F_E | F_S | F_UU | F_U | F_BL | F_AL,
    OPT_DEPTH = F_T | F_PU,
    REQ_TICKER = F_U | F_S | F_BP | F_BQ | F_AP | F_AQ,
    OPT_TICKER = F_E | F_T,
    REQ_PARTIAL = F_LUID | F_BIDS | F_ASKS,
    OPT_PARTIAL = F_E | F_T
};

typedef struct {
    double f;
    int64_t fp;
} ff_dec;
typedef struct {
    ff_dec price, qty;
} ff_level;

typedef struct {
    uint32_t seen; /* slot parsed and valid */
    uint32_t bad;  /* slot present but invalid (reason[] says why) */
    uint32_t keys; /* key present, any type */
    uint8_t reason[32];
    int ev;
    int64_t E, T, aid, tid, first, last, UU, u, pu, luid;
    int m;
    ff_dec p, q, nq, bp, bq, ap, aq;
    const uint8_t *s_ptr;
    ptrdiff_t s_len;
    int64_t sym;  /* symbol id when a plan matched a cached name (ff_ctx.sym_cache), else
                         * FF_SYM_PLAIN (a plan scanned a plain name) or FF_SYM_UNKNOWN */
    int sym_slot; /* with FF_SYM_PLAIN: the cache slot for the name */
    const uint8_t *stream_ptr;
    ptrdiff_t stream_len;
    ff_level *stage;
    ptrdiff_t nlv[4]; /* 4 staging areas of ctx.max_levels: ffb_levels */
    int depth;        /* containers open around this object's values (the general scanner's) */
} ff_fields;

#define FF_SYM_SLOTS 8
typedef struct {
    uint8_t pat[16];
    uint32_t len; /* the name's length (1..15; the compare covers it and its quote); 0 = empty */
    int64_t id;
} ff_symslot;

typedef struct {
    uint8_t *scratch; /* escape-decoding arena, reset per payload */
    ptrdiff_t scratch_cap, scratch_used;
    ptrdiff_t max_levels; /* per staging area */
    int64_t fp_none;
    int fp_none_seen;    /* a decimal of this pass came out fp_none (the caller resets it) */
    ff_strtod_fn strtod; /* ff_parse_decimal's slow path */
    /* Symbols the plans met, as they appear in payloads: name, '"', zero padding.  A plan
     * compares the bytes at "s" with one slot (picked by a hash of their first 8) at once,
     * instead of scanning the string and looking the name up. */
    ff_symslot sym_cache[FF_SYM_SLOTS];
    const void *sym_owner; /* the symbol table the cached ids belong to */
} ff_ctx;

/* Staging area st (ST_B .. ST_ASKS) of F. */
#define ffb_levels(c, F, st) ((F)->stage + (st) * (c)->max_levels)

static inline int ffb_lowest_bit(uint32_t x) { return ff_ctz32(x); }

/* A repeated key replaces the earlier value (as json.loads does): forget what it set. */
FF_INLINE void ffb_mark_key(ff_fields *F, uint32_t slots) {
    F->keys |= slots;
    F->seen &= ~slots;
    F->bad &= ~slots;
}

/* Records a field-level problem and returns 0; fatal codes pass through. */
static inline int ffb_bad(ff_fields *F, uint32_t slot, int r) {
    if (FF_IS_FATAL(r)) return r;
    if (slot) {
        F->bad |= slot;
        F->reason[ffb_lowest_bit(slot)] = (uint8_t)r;
    }
    return 0;
}

static inline int ffb_skip_wrong_type(ff_scan *s, ff_fields *F, uint32_t slot) {
    int r = ff_skip_value_in(s, F->depth);
    return r ? r : ffb_bad(F, slot, FF_WRONG_TYPE);
}

/* A string value, unescaped into the scratch arena when it holds escapes. */
FF_INLINE int ffb_read_str(ff_ctx *c, ff_scan *s, const uint8_t **out, ptrdiff_t *n) {
    const uint8_t *st;
    ptrdiff_t ln;
    int esc;
    int r = ff_scan_string(s, &st, &ln, &esc);
    if (r) return r;
    if (!esc) {
        *out = st;
        *n = ln;
        return 0;
    }
    ptrdiff_t dn =
        ff_unescape(st, ln, c->scratch + c->scratch_used, c->scratch_cap - c->scratch_used);
    if (dn < 0) return FF_TOO_LONG;
    *out = c->scratch + c->scratch_used;
    *n = dn;
    c->scratch_used += dn;
    return 0;
}

/* The general decimal parser: the only reader that can leave fp_none (the fast ones take
 * exact shapes only), so it alone raises c->fp_none_seen. */
static int ffb_decimal(ff_ctx *c, const uint8_t *st, ptrdiff_t n, ff_dec *d) {
    int r = ff_parse_decimal(st, n, &d->f, &d->fp, c->fp_none, c->strtod);
    c->fp_none_seen |= d->fp == c->fp_none;
    return r;
}

/* Both values of the plain decimal [st, q): m = all its digits, fc of them after the
 * point, at most 19 in all. */
FF_INLINE int ffb_dec_value(ff_ctx *c, const uint8_t *st, const uint8_t *q, uint64_t m,
                            ptrdiff_t fc, ff_dec *d) {
    if (m <= (1ULL << 53)) {
        d->f = (double)m / ff_pow10_f[fc]; /* exact operands: one correct rounding */
        if (fc <= FF_FP_DECIMALS) {
            int sh = FF_FP_DECIMALS - (int)fc;
            if (m <= ff_int64_div10[sh]) {
                d->fp = (int64_t)(m * ff_pow10_u[sh]);
                return 0;
            }
        }
    }
    /* rarer shapes (a call, so the hot path keeps no stack slot for them): the general
     * parser decides both values */
    return ffb_decimal(c, st, q - st, d);
}

/* A decimal string; s->p at its opening quote.  Field-level errors leave s->p after it. */
FF_INLINE int ffb_read_dec(ff_ctx *c, ff_scan *s, ff_dec *d) {
    const uint8_t *st = s->p + 1, *end = s->end, *q;
    uint64_t iv, fv = 0;
    ptrdiff_t ic, fc = 0, ln;
    int r;
    /* Fast path: digits [. digits], at most 19 digits, closed by a quote: the shape of
     * every Binance price and quantity.  m = all digits, value = m / 10**fc. */
    q = ff_digit_run(st, end, &iv, &ic);
    if (q < end && *q == '.') q = ff_digit_run(q + 1, end, &fv, &fc);
    if (q < end && *q == '"' && ic > 0 && ic + fc <= 19) {
        s->p = q + 1;
        return ffb_dec_value(c, st, q, iv * ff_pow10_u[fc] + fv, fc, d);
    }
    r = ffb_read_str(c, s, &st, &ln);
    if (r) return r;
    return ffb_decimal(c, st, ln, d);
}

FF_INLINE int ffb_field_dec(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t slot, ff_dec *d) {
    ffb_mark_key(F, slot);
    if (*s->p != '"') return ffb_skip_wrong_type(s, F, slot);
    int r = ffb_read_dec(c, s, d);
    if (r) return ffb_bad(F, slot, r);
    F->seen |= slot;
    return 0;
}

FF_INLINE int ffb_field_int(ff_scan *s, ff_fields *F, uint32_t slot, int64_t *v) {
    ffb_mark_key(F, slot);
    if (*s->p != '-' && !ff_is_digit(*s->p)) return ffb_skip_wrong_type(s, F, slot);
    int r = ff_parse_int(s, v);
    if (r) return ffb_bad(F, slot, r);
    F->seen |= slot;
    return 0;
}

static inline int ffb_field_bool(ff_scan *s, ff_fields *F, uint32_t slot, int *v) {
    int r;
    ffb_mark_key(F, slot);
    if (*s->p == 't') {
        r = ff_skip_literal(s, "true", 4);
        *v = 1;
    } else if (*s->p == 'f') {
        r = ff_skip_literal(s, "false", 5);
        *v = 0;
    } else return ffb_skip_wrong_type(s, F, slot);
    if (r) return r;
    F->seen |= slot;
    return 0;
}

FF_INLINE int ffb_field_str(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t slot, const uint8_t **p,
                            ptrdiff_t *n) {
    ffb_mark_key(F, slot);
    if (*s->p != '"') return ffb_skip_wrong_type(s, F, slot);
    int r = ffb_read_str(c, s, p, n);
    if (r) return ffb_bad(F, slot, r);
    F->seen |= slot;
    return 0;
}

/* The first '@' of p[:end], eight bytes at a time: a stream name's symbol fits in the first
 * word or two, so this is a few instructions where memchr is a library call. */
FF_INLINE const uint8_t *ffb_find_at(const uint8_t *p, const uint8_t *end) {
    for (; end - p >= 8; p += 8) {
        uint64_t v = ff_load8(p) ^ 0x4040404040404040ULL;
        /* the lowest flagged byte is the first '@' (a borrow only flags bytes above it) */
        uint64_t x = (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
        if (x) return p + (ff_ctz64(x) >> 3);
    }
    for (; p < end; p++)
        if (*p == '@') return p;
    return NULL;
}

/* The C twin of fastfeed.feed.streams' grammar (tests compare them): "<symbol>@depth<digits>
 * [@...]" is partial depth, "<symbol>@depth[@...]" diff depth, and "!..." streams are no
 * symbol's. */
FF_INLINE int ffb_stream_is_partial(const uint8_t *p, ptrdiff_t n) {
    const uint8_t *end = p + n, *at, *q;
    if (n <= 0 || p[0] == '!') return 0;
    at = ffb_find_at(p, end);
    if (!at || end - at < 7 || memcmp(at + 1, "depth", 5) != 0) return 0;
    q = at + 6;
    while (q < end && ff_is_digit(*q)) q++;
    return q > at + 6 && (q == end || *q == '@');
}

/* The event type "e" names. */
static inline int ffb_event_code(const uint8_t *p, ptrdiff_t n) {
    if (n == 8 && memcmp(p, "aggTrade", 8) == 0) return EV_AGGTRADE;
    if (n == 11 && memcmp(p, "depthUpdate", 11) == 0) return EV_DEPTH;
    if (n == 5 && memcmp(p, "trade", 5) == 0) return EV_TRADE;
    if (n == 10 && memcmp(p, "bookTicker", 10) == 0) return EV_BOOKTICKER;
    if (n == 14 && memcmp(p, "serverShutdown", 14) == 0) return EV_SHUTDOWN;
    return EV_OTHER;
}

static inline int ffb_field_event(ff_ctx *c, ff_scan *s, ff_fields *F) {
    const uint8_t *p = NULL;
    ptrdiff_t n = 0;
    int r = ffb_field_str(c, s, F, F_EV, &p, &n);
    if (r || !(F->seen & F_EV)) return r;
    F->ev = ffb_event_code(p, n);
    return 0;
}

/* [[price, qty], ...] into staging area st.  Anything else: rescan the value as plain
 * JSON to find its end, and mark the field bad. */
static int ffb_field_levels(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t slot, int st) {
    const uint8_t *start = s->p;
    ff_level *lv = ffb_levels(c, F, st);
    ptrdiff_t n = 0;
    int r = FF_WRONG_TYPE;
    ffb_mark_key(F, slot);
    if (*s->p != '[') return ffb_skip_wrong_type(s, F, slot);
    s->p++;
    ff_skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        F->nlv[st] = 0;
        F->seen |= slot;
        return 0;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '[') break;
        s->p++;
        ff_skip_ws(s);
        if (n >= c->max_levels) {
            r = FF_TOO_MANY_LEVELS;
            break;
        }
        if (s->p >= s->end || *s->p != '"') break;
        if ((r = ffb_read_dec(c, s, &lv[n].price))) break;
        r = FF_WRONG_TYPE;
        ff_skip_ws(s);
        if (s->p >= s->end || *s->p != ',') break;
        s->p++;
        ff_skip_ws(s);
        if (s->p >= s->end || *s->p != '"') break;
        if ((r = ffb_read_dec(c, s, &lv[n].qty))) break;
        r = FF_WRONG_TYPE;
        ff_skip_ws(s);
        if (s->p >= s->end || *s->p != ']') break;
        s->p++;
        n++;
        ff_skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            ff_skip_ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            F->nlv[st] = n;
            F->seen |= slot;
            return 0;
        }
        break;
    }
    if (FF_IS_FATAL(r)) return r;
    s->p = start;
    int r2 = ff_skip_value_in(s, F->depth);
    return r2 ? r2 : ffb_bad(F, slot, r);
}

static int ffb_object(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner, int depth);

/* The general scanner's reader of each kind of key (see FF_KEYS1 / FF_KEYSN); each returns. */
#define FFB_READ_int(slots, m) return ffb_field_int(s, F, slots, &F->m)
#define FFB_READ_dec(slots, m) return ffb_field_dec(c, s, F, slots, &F->m)
#define FFB_READ_bool(slots, m) return ffb_field_bool(s, F, slots, &F->m)
#define FFB_READ_str(slots, m) return ffb_field_str(c, s, F, slots, &F->m##_ptr, &F->m##_len)
#define FFB_READ_event(slots, m) return ffb_field_event(c, s, F)
#define FFB_READ_a(slots, m)                                                                       \
    ffb_mark_key(F, slots);                                                                        \
    if (*s->p == '"') return ffb_field_dec(c, s, F, F_AP, &F->ap);                                 \
    if (*s->p == '[') return ffb_field_levels(c, s, F, F_AL, ST_A);                                \
    if (*s->p == '-' || ff_is_digit(*s->p)) return ffb_field_int(s, F, F_AID, &F->aid);            \
    return ffb_skip_wrong_type(s, F, 0)
#define FFB_READ_b(slots, m)                                                                       \
    ffb_mark_key(F, slots);                                                                        \
    if (*s->p == '"') return ffb_field_dec(c, s, F, F_BP, &F->bp);                                 \
    if (*s->p == '[') return ffb_field_levels(c, s, F, F_BL, ST_B);                                \
    return ffb_skip_wrong_type(s, F, 0)
#define FFB_READ_levels(slots, st) return ffb_field_levels(c, s, F, slots, st)
#define FFB_READ_ctrl(slots, m)                                                                    \
    F->keys |= slots;                                                                              \
    break
/* The envelope's keys mean something at the top level only (inner != NULL). */
#define FFB_READ_stream(slots, m)                                                                  \
    if (!inner) break;                                                                             \
    return ffb_field_stream(c, s, F, slots)
#define FFB_READ_data(slots, m)                                                                    \
    if (!inner || *s->p != '{') {                                                                  \
        if (inner) ffb_mark_key(F, slots);                                                         \
        break;                                                                                     \
    }                                                                                              \
    return ffb_field_data(c, s, F, inner, slots)

#define FFB_CASE1(ch, slots, reader, m)                                                            \
    case ch: {                                                                                     \
        FFB_READ_##reader(slots, m);                                                               \
    }
#define FF_KEY_IS(name)                                                                            \
    (kn == (ptrdiff_t)sizeof(name) - 1 && memcmp(k, name, sizeof(name) - 1) == 0)
#define FFB_CASEN(name, slots, reader, m)                                                          \
    if (FF_KEY_IS(name)) { FFB_READ_##reader(slots, m); }

/* The combined-stream name.  One that cannot be read (escaped beyond the scratch arena)
 * cannot route the message: the payload is rejected for it, not taken for unknown. */
static inline int ffb_field_stream(ff_ctx *c, ff_scan *s, ff_fields *F, uint32_t slot) {
    int r = ffb_field_str(c, s, F, slot, &F->stream_ptr, &F->stream_len);
    if (r || !(F->bad & slot)) return r;
    r = F->reason[ffb_lowest_bit(slot)];
    return r == FF_TOO_LONG ? r : 0;
}

static inline int ffb_field_data(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner,
                                 uint32_t slot) {
    ffb_mark_key(F, slot);
    inner->seen = inner->bad = inner->keys = 0;
    inner->ev = EV_NONE;
    int r = ffb_object(c, s, inner, NULL, F->depth + 1);
    if (!r) F->seen |= slot;
    return r;
}

/* Parses the value of key k[:kn] into F, or skips it.  s->p is at the value. */
static inline int ffb_dispatch(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner,
                               const uint8_t *k, ptrdiff_t kn) {
    if (kn == 1) {
        switch (k[0]) {
            FF_KEYS1(FFB_CASE1)
        default: break;
        }
    } else {
        do { FF_KEYSN(FFB_CASEN) } while (0);
    }
    return ff_skip_value_in(s, F->depth);
}

/* One JSON object into F; s->p at '{', the depth-th container open.  ``inner`` is set at
 * the top level only, where a "data" object (the combined-stream envelope) is parsed into it. */
static int ffb_object(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner, int depth) {
    const uint8_t *kp;
    ptrdiff_t kn;
    int esc, r;
    uint8_t keybuf[32];
    F->depth = depth;
    s->p++;
    ff_skip_ws(s);
    if (s->p >= s->end) return FF_TRUNCATED;
    if (*s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        const uint8_t *p = s->p;
        /* A key of one plain character, directly followed by ':', is the common case. */
        if (s->end - p >= 4 && p[0] == '"' && p[2] == '"' && ff_str_class[p[1]] == 0 &&
            p[3] == ':') {
            kp = p + 1;
            kn = 1;
            s->p = p + 4;
        } else {
            if (p >= s->end) return FF_TRUNCATED;
            if (*p != '"') return FF_SYNTAX;
            if ((r = ff_scan_string(s, &kp, &kn, &esc))) return r;
            if (esc) {
                kn = ff_unescape(kp, kn, keybuf, sizeof(keybuf));
                kp = keybuf; /* kn < 0 (too long to be ours) matches no key */
            }
            ff_skip_ws(s);
            if (s->p >= s->end) return FF_TRUNCATED;
            if (*s->p != ':') return FF_SYNTAX;
            s->p++;
        }
        ff_skip_ws(s);
        if (s->p >= s->end) return FF_TRUNCATED;
        if ((r = ffb_dispatch(c, s, F, inner, kp, kn))) return r;
        ff_skip_ws(s);
        if (s->p >= s->end) return FF_TRUNCATED;
        uint8_t ch = *s->p++;
        if (ch == ',') {
            ff_skip_ws(s);
            continue;
        }
        if (ch == '}') return 0;
        return FF_SYNTAX;
    }
}

/* A whole payload's object; s->p at '{'. */
static inline int ffb_parse_object(ff_ctx *c, ff_scan *s, ff_fields *F, ff_fields *inner) {
    return ffb_object(c, s, F, inner, 1);
}

#endif
