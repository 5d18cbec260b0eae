/* fastfeed's vocabulary: the one definition of every code that crosses a boundary (C and
 * Cython, Cython and Python, rows and readers).  Each list is an X-macro: X(NAME, value, text).
 * The C enums below, the Cython names (_codes.pxd) and the Python IntEnums (built at import
 * from the tables at the end, in _codes.pyx) all expand from these lists;
 * tests/test_codes.py reads this file as text and checks every other spelling against it.
 * Plain C: no Python headers.
 */
#ifndef FASTFEED_CODES_H
#define FASTFEED_CODES_H

/* What one payload was (fastfeed.Kind; BinanceDecoder.decode returns it). */
#define FF_KINDS(X)                                                                                \
    X(TRADE, 0, "aggTrade or trade: one row in dec.trades")                                        \
    X(DEPTH, 1, "depthUpdate: one row per level in dec.depth")                                     \
    X(TICKER, 2, "bookTicker: one row in dec.tickers")                                             \
    X(PARTIAL, 3, "partial book depth / REST snapshot: one row per level in dec.partial")          \
    X(CONTROL, 4, "subscription reply, error reply, serverShutdown: cold path")                    \
    X(UNKNOWN, 5, "valid JSON of another kind: counted, no row")                                   \
    X(ERROR, 6, "invalid payload: counted by reason, no row")

/* Why a payload was Kind.ERROR (fastfeed.Reject).  The lexer and the scanner return these;
 * 0 (FF_OK) is success.  The fatal ones (the payload is not valid JSON) come first. */
#define FF_REJECTS(X)                                                                              \
    X(TRUNCATED, 1, "the payload ends inside a value")                                             \
    X(SYNTAX, 2, "not JSON")                                                                       \
    X(BAD_UTF8, 3, "a string is not valid UTF-8")                                                  \
    X(TOO_DEEP, 4, "nested deeper than 64 containers")                                             \
    X(BAD_NUMBER, 5, "an integer outside int64 or a decimal string that is not a number")          \
    X(MISSING_FIELD, 6, "a field the message kind requires is absent")                             \
    X(WRONG_TYPE, 7, "a field holds another JSON type than its kind requires")                     \
    X(TOO_MANY_LEVELS, 8, "more levels than max_levels, or than the ring holds")                   \
    X(TOO_MANY_SYMBOLS, 9, "the symbol table is full (max_symbols)")                               \
    X(TOO_LONG, 10, "a string too long to read: escaped beyond 4 KiB, or a symbol of 64 KiB")

/* Stream slots: the id sequences the feed keeps per (symbol, slot), and the event rows'
 * ``slot`` column (fastfeed.feed.streams; the text is the stream kind's name). */
#define FF_SLOTS(X)                                                                                \
    X(AGG, 0, "aggTrade")                                                                          \
    X(TRADE, 1, "trade")                                                                           \
    X(DEPTH, 2, "depth")                                                                           \
    X(TICKER, 3, "bookTicker")                                                                     \
    X(PARTIAL, 4, "partial")

/* ``reason`` of a row in feed.events (fastfeed.EventReason). */
#define FF_EVENT_REASONS(X)                                                                        \
    X(GAP, 1, "id sequence jumped (rows missing between two rows)")                                \
    X(CONNECT, 2, "a connection came up")                                                          \
    X(DISCONNECT, 3, "a connection went down")                                                     \
    X(ROTATE, 4, "a replacement connection took over")                                             \
    X(PROTOCOL, 5, "protocol error on a connection")                                               \
    X(SUBSCRIBE, 6, "reserved (no writer yet)")                                                    \
    X(WATCHDOG, 7, "a subscribed stream went silent")

#define FF_X_KIND(name, value, text) FF_K_##name = value,
#define FF_X_REJECT(name, value, text) FF_##name = value,
#define FF_X_SLOT(name, value, text) FF_S_##name = value,
#define FF_X_REASON(name, value, text) FF_EVR_##name = value,
#define FF_X_COUNT(name, value, text) +1

enum { FF_KINDS(FF_X_KIND) FF_N_KINDS = 0 FF_KINDS(FF_X_COUNT) };
enum { FF_OK = 0, FF_REJECTS(FF_X_REJECT) FF_N_REJECTS = 1 FF_REJECTS(FF_X_COUNT) };
enum { FF_SLOTS(FF_X_SLOT) FF_N_SLOTS = 0 FF_SLOTS(FF_X_COUNT) };
enum { FF_EVENT_REASONS(FF_X_REASON) FF_N_EVENT_REASONS = 0 FF_EVENT_REASONS(FF_X_COUNT) };

/* 1..4 make the whole payload invalid JSON; the rest are valid JSON that is not a valid
 * message of its kind (a field-level problem: the scanner goes on). */
#define FF_IS_FATAL(r) ((r) >= FF_TRUNCATED && (r) <= FF_TOO_DEEP)

/* The lists as data, for the Python enums (_codes.pyx). */
typedef struct {
    const char *name;
    int value;
    const char *text;
} ff_code;

#define FF_X_ROW(name, value, text) {#name, value, text},
static const ff_code ff_kind_table[] = {FF_KINDS(FF_X_ROW)};
static const ff_code ff_reject_table[] = {FF_REJECTS(FF_X_ROW)};
static const ff_code ff_slot_table[] = {FF_SLOTS(FF_X_ROW)};
static const ff_code ff_event_reason_table[] = {FF_EVENT_REASONS(FF_X_ROW)};

#endif
