# Cython names of the codes in _codes.h (the one definition; tests/test_codes.py checks
# that these names are the header's).  Values come from the header, never from here.

cdef extern from "_codes.h":
    # Kind: what one payload was
    enum:
        K_TRADE "FF_K_TRADE"
        K_DEPTH "FF_K_DEPTH"
        K_TICKER "FF_K_TICKER"
        K_PARTIAL "FF_K_PARTIAL"
        K_CONTROL "FF_K_CONTROL"
        K_UNKNOWN "FF_K_UNKNOWN"
        K_ERROR "FF_K_ERROR"
        N_KINDS "FF_N_KINDS"
    # Reject: why a payload was K_ERROR (R_OK: it was not)
    enum:
        R_OK "FF_OK"
        R_TRUNCATED "FF_TRUNCATED"
        R_SYNTAX "FF_SYNTAX"
        R_BAD_UTF8 "FF_BAD_UTF8"
        R_TOO_DEEP "FF_TOO_DEEP"
        R_BAD_NUMBER "FF_BAD_NUMBER"
        R_MISSING_FIELD "FF_MISSING_FIELD"
        R_WRONG_TYPE "FF_WRONG_TYPE"
        R_TOO_MANY_LEVELS "FF_TOO_MANY_LEVELS"
        R_TOO_MANY_SYMBOLS "FF_TOO_MANY_SYMBOLS"
        R_TOO_LONG "FF_TOO_LONG"
        N_REJECTS "FF_N_REJECTS"
    bint FF_IS_FATAL(int r) noexcept
    # Stream slots: one id sequence per (symbol, slot)
    enum:
        S_AGG "FF_S_AGG"
        S_TRADE "FF_S_TRADE"
        S_DEPTH "FF_S_DEPTH"
        S_TICKER "FF_S_TICKER"
        S_PARTIAL "FF_S_PARTIAL"
        N_SLOTS "FF_N_SLOTS"
    # Event (marker) row reasons
    enum:
        EV_GAP "FF_EVR_GAP"
        EV_CONNECT "FF_EVR_CONNECT"
        EV_DISCONNECT "FF_EVR_DISCONNECT"
        EV_ROTATE "FF_EVR_ROTATE"
        EV_PROTOCOL "FF_EVR_PROTOCOL"
        EV_SUBSCRIBE "FF_EVR_SUBSCRIBE"
        EV_WATCHDOG "FF_EVR_WATCHDOG"
        N_EVENT_REASONS "FF_N_EVENT_REASONS"

    ctypedef struct ff_code:
        const char* name
        int value
        const char* text
    const ff_code ff_kind_table[]
    const ff_code ff_reject_table[]
    const ff_code ff_slot_table[]
    const ff_code ff_event_reason_table[]
