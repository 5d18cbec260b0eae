/* The lexer (_json.h), the Binance scanner (_binance.h) and the compact pass and plans
 * (_compact.h) as plain C, without Python: tests/test_c_scanner.py builds this file with
 * -std=c11 -Wall -Wextra -Werror and runs it.  Prints one line per failed check and exits
 * non-zero if any failed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "_compact.h"

static int failures = 0, checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                 \
        }                                                                                          \
    } while (0)

#define FP_NONE INT64_MIN
#define MAX_LEVELS 16

static uint8_t scratch[4096];
static ff_level stage[8 * MAX_LEVELS];

static ff_ctx make_ctx(void) {
    ff_ctx c;
    memset(&c, 0, sizeof(c));
    c.scratch = scratch;
    c.scratch_cap = sizeof(scratch);
    c.max_levels = MAX_LEVELS;
    c.fp_none = FP_NONE;
    c.strtod = ff_c_strtod;
    return c;
}

static void reset(ff_fields *F, ff_level *st) {
    memset(F, 0, sizeof(*F));
    F->sym = FF_SYM_UNKNOWN;
    F->stage = st;
}

/* The general scanner over a whole payload (what _decoder.pyx's slow path runs). */
static int scan(const char *payload, ff_fields *F, ff_fields *inner) {
    ff_ctx c = make_ctx();
    ff_scan s = {(const uint8_t *)payload, (const uint8_t *)payload + strlen(payload)};
    reset(F, stage);
    reset(inner, stage + 4 * MAX_LEVELS);
    int r = ffb_parse_object(&c, &s, F, inner);
    if (!r) {
        ff_skip_ws(&s);
        if (s.p != s.end) r = FF_SYNTAX;
    }
    return r;
}

/* A plan, then the compact pass: 0 when either took the payload whole. */
static int fast(const char *payload, ff_fields *F, ff_fields *inner) {
    ff_ctx c = make_ctx();
    const uint8_t *p = (const uint8_t *)payload, *end = p + strlen(payload);
    ff_scan s = {p, end};
    reset(F, stage);
    reset(inner, stage + 4 * MAX_LEVELS);
    if (ffp_payload(&c, &s, F, inner) == 0 && s.p == end) return 0;
    s.p = p;
    reset(F, stage);
    reset(inner, stage + 4 * MAX_LEVELS);
    return ffc_object(&c, &s, F, inner) == 0 && s.p == end ? 0 : FFC_BAIL;
}

static int skip(const char *json) {
    ff_scan s = {(const uint8_t *)json, (const uint8_t *)json + strlen(json)};
    int r = ff_skip_value(&s);
    if (!r && s.p != s.end) r = FF_SYNTAX;
    return r;
}

static void test_codes(void) {
    CHECK(FF_N_KINDS == 7 && FF_K_ERROR == 6);
    CHECK(FF_N_REJECTS == 11 && FF_TOO_LONG == 10);
    CHECK(FF_IS_FATAL(FF_TRUNCATED) && FF_IS_FATAL(FF_TOO_DEEP) && !FF_IS_FATAL(FF_BAD_NUMBER));
    CHECK(FF_N_SLOTS == 5 && strcmp(ff_slot_table[FF_S_TICKER].name, "TICKER") == 0);
    CHECK(strcmp(ff_reject_table[0].name, "TRUNCATED") == 0);
    CHECK(ff_event_reason_table[0].value == FF_EVR_GAP);
    CHECK(strcmp(ff_kind_table[FF_K_PARTIAL].name, "PARTIAL") == 0);
}

static void test_lexer(void) {
    char deep[200];
    CHECK(skip("{\"a\":[1,2.5e-3,\"x\\u00e9\",true,false,null,{}]}") == FF_OK);
    CHECK(skip("{\"a\":[1,2") == FF_TRUNCATED);
    CHECK(skip("{\"a\":01}") == FF_SYNTAX);
    CHECK(skip("{\"a\":\"\xff\"}") == FF_BAD_UTF8);
    CHECK(skip("{\"a\":\"\\x\"}") == FF_SYNTAX);
    CHECK(skip("[tru]") == FF_SYNTAX);
    memset(deep, 0, sizeof(deep));
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    CHECK(skip(deep) == FF_OK); /* 64 containers: the limit */
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    CHECK(skip(deep) == FF_TOO_DEEP);

    int64_t v = 0;
    ff_scan s = {(const uint8_t *)"-9223372036854775808,", NULL};
    s.end = s.p + 21;
    CHECK(ff_parse_int(&s, &v) == FF_OK && v == INT64_MIN && *s.p == ',');
    s.p = (const uint8_t *)"9223372036854775808";
    s.end = s.p + 19;
    CHECK(ff_parse_int(&s, &v) == FF_BAD_NUMBER);
    s.p = (const uint8_t *)"1.5";
    s.end = s.p + 3;
    CHECK(ff_parse_int(&s, &v) == FF_WRONG_TYPE && s.p == s.end);
    s.p = (const uint8_t *)"\"1\"";
    s.end = s.p + 3;
    CHECK(ff_parse_int(&s, &v) == FF_WRONG_TYPE && *s.p == '"');

    uint8_t out[16];
    const char *esc = "a\\nb\\u00e9\\ud83d\\ude00";
    ptrdiff_t n = ff_unescape((const uint8_t *)esc, (ptrdiff_t)strlen(esc), out, sizeof(out));
    CHECK(n == 9 && memcmp(out, "a\nb\xc3\xa9\xf0\x9f\x98\x80", 9) == 0);
    CHECK(ff_unescape((const uint8_t *)esc, (ptrdiff_t)strlen(esc), out, 4) < 0);
}

static void test_decimal(void) {
    double f;
    int64_t fp;
    const char *d = "16843.55000000";
    CHECK(ff_parse_decimal((const uint8_t *)d, 14, &f, &fp, FP_NONE, ff_c_strtod) == FF_OK);
    CHECK(f == 16843.55 && fp == 1684355000000LL);
    d = "0.000000001";
    CHECK(ff_parse_decimal((const uint8_t *)d, 11, &f, &fp, FP_NONE, ff_c_strtod) == FF_OK);
    CHECK(f == 1e-9 && fp == FP_NONE);
    d = "-1.5e3";
    CHECK(ff_parse_decimal((const uint8_t *)d, 6, &f, &fp, FP_NONE, ff_c_strtod) == FF_OK);
    CHECK(f == -1500.0 && fp == -150000000000LL);
    d = "0.1000000000000000055511151231257827"; /* past 19 digits: the slow path */
    CHECK(ff_parse_decimal((const uint8_t *)d, (ptrdiff_t)strlen(d), &f, &fp, FP_NONE,
                           ff_c_strtod) == FF_OK);
    CHECK(f == 0.1 && fp == FP_NONE);
    d = "1e400";
    CHECK(ff_parse_decimal((const uint8_t *)d, 5, &f, &fp, FP_NONE, ff_c_strtod) == FF_OK);
    CHECK(isinf(f) && fp == FP_NONE);
    d = "1.2.3";
    CHECK(ff_parse_decimal((const uint8_t *)d, 5, &f, &fp, FP_NONE, ff_c_strtod) == FF_BAD_NUMBER);
    CHECK(ff_parse_decimal((const uint8_t *)".", 1, &f, &fp, FP_NONE, ff_c_strtod) ==
          FF_BAD_NUMBER);
}

#define AGG                                                                                        \
    "{\"e\":\"aggTrade\",\"E\":1672515782136,\"s\":\"BNBBTC\",\"a\":12345,\"p\":\"0.00100000\","   \
    "\"q\":\"100.00000000\",\"f\":100,\"l\":105,\"T\":1672515782136,\"m\":true,\"M\":true}"

static void test_scanner(void) {
    ff_fields F, inner;
    CHECK(scan(AGG, &F, &inner) == 0);
    CHECK((F.seen & REQ_AGG) == REQ_AGG && F.ev == EV_AGGTRADE && F.bad == 0);
    CHECK(F.E == 1672515782136LL && F.aid == 12345 && F.first == 100 && F.last == 105 && F.m == 1);
    CHECK(F.p.fp == 100000 && F.q.fp == 10000000000LL && F.s_len == 6);
    CHECK(memcmp(F.s_ptr, "BNBBTC", 6) == 0);

    /* the plans take Binance's layout; the result is the general scanner's */
    ff_fields G, ginner;
    CHECK(fast(AGG, &G, &ginner) == 0);
    CHECK(G.seen == F.seen && G.E == F.E && G.p.fp == F.p.fp && G.q.f == F.q.f && G.last == F.last);

    /* field-level problems mark the field, and the scan goes on */
    CHECK(scan("{\"e\":\"trade\",\"p\":1.5,\"t\":\"7\",\"E\":99999999999999999999}", &F, &inner) ==
          0);
    CHECK((F.bad & F_P) && F.reason[ffb_lowest_bit(F_P)] == FF_WRONG_TYPE);
    CHECK((F.bad & F_TID) && F.reason[ffb_lowest_bit(F_TID)] == FF_WRONG_TYPE);
    CHECK((F.bad & F_E) && F.reason[ffb_lowest_bit(F_E)] == FF_BAD_NUMBER);
    CHECK(fast("{\"e\":\"trade\",\"p\":1.5}", &G, &ginner) == FFC_BAIL);

    /* whitespace, escaped keys, repeated keys (the last wins), any order */
    CHECK(scan("{ \"\\u0070\" : \"2.5\" , \"p\":\"3\", \"u\":7,\"s\":\"X\"}", &F, &inner) == 0);
    CHECK((F.seen & F_P) && F.p.fp == 300000000 && F.u == 7);

    /* fatal problems end the scan */
    CHECK(scan("{\"e\":\"trade\",\"E\":1", &F, &inner) == FF_TRUNCATED);
    CHECK(scan("{\"e\":\"tr\xc3\x28\"}", &F, &inner) == FF_BAD_UTF8);
    CHECK(scan("{\"e\" \"trade\"}", &F, &inner) == FF_SYNTAX);

    /* levels */
    const char *depth = "{\"e\":\"depthUpdate\",\"E\":1,\"s\":\"X\",\"U\":1,\"u\":2,"
                        "\"b\":[[\"1.5\",\"2\"],[\"1.25\",\"0\"]],\"a\":[]}";
    CHECK(scan(depth, &F, &inner) == 0);
    CHECK((F.seen & REQ_DEPTH) == REQ_DEPTH && F.nlv[ST_B] == 2 && F.nlv[ST_A] == 0);
    CHECK(F.stage[1].price.fp == 125000000 && F.stage[1].qty.fp == 0);
    CHECK(fast(depth, &G, &ginner) == 0 && G.nlv[ST_B] == 2 && G.stage[0].price.f == 1.5);

    /* the combined-stream envelope */
    const char *env =
        "{\"stream\":\"x@depth5\",\"data\":{\"lastUpdateId\":5,\"bids\":[[\"1\",\"2\"]],"
        "\"asks\":[[\"3\",\"4\"]]}}";
    CHECK(scan(env, &F, &inner) == 0);
    CHECK((F.seen & F_STREAM) && (F.seen & F_DATA) && F.stream_len == 8);
    CHECK((inner.seen & REQ_PARTIAL) == REQ_PARTIAL && inner.luid == 5 && inner.nlv[ST_ASKS] == 1);
    CHECK(fast(env, &G, &ginner) == 0 && ginner.luid == 5 && ginner.nlv[ST_BIDS] == 1);

    /* an escaped stream name too long to unescape rejects the payload */
    static char big[6000];
    strcpy(big, "{\"stream\":\"");
    memset(big + 11, 'a', 4200);
    strcpy(big + 11 + 4200, "\\n\",\"data\":{}}");
    CHECK(scan(big, &F, &inner) == FF_TOO_LONG);

    /* nesting counts the payload's own objects */
    static char nest[300];
    strcpy(nest, "{\"x\":");
    memset(nest + 5, '[', 63);
    memset(nest + 68, ']', 63);
    strcpy(nest + 131, "}");
    CHECK(scan(nest, &F, &inner) == 0);
    strcpy(nest, "{\"x\":");
    memset(nest + 5, '[', 64);
    memset(nest + 69, ']', 64);
    strcpy(nest + 133, "}");
    CHECK(scan(nest, &F, &inner) == FF_TOO_DEEP);

    /* control replies are marked, and left to the general scanner by the fast passes */
    CHECK(scan("{\"result\":null,\"id\":1}", &F, &inner) == 0 && (F.keys & F_CTRL));
    CHECK(fast("{\"result\":null,\"id\":1}", &G, &ginner) == FFC_BAIL);
}

int main(void) {
    test_codes();
    test_lexer();
    test_decimal();
    test_scanner();
    printf("%d checks, %d failed (%s)\n", checks, failures, FFC_SIMD_NAME);
    return failures ? 1 : 0;
}
