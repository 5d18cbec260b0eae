# Stub of _codes.pyx; the members are _codes.h's (tests/test_codes.py checks them).
import enum

class Kind(enum.IntEnum):
    TRADE = 0
    DEPTH = 1
    TICKER = 2
    PARTIAL = 3
    CONTROL = 4
    UNKNOWN = 5
    ERROR = 6

class Reject(enum.IntEnum):
    TRUNCATED = 1
    SYNTAX = 2
    BAD_UTF8 = 3
    TOO_DEEP = 4
    BAD_NUMBER = 5
    MISSING_FIELD = 6
    WRONG_TYPE = 7
    TOO_MANY_LEVELS = 8
    TOO_MANY_SYMBOLS = 9
    TOO_LONG = 10

class Slot(enum.IntEnum):
    AGG = 0
    TRADE = 1
    DEPTH = 2
    TICKER = 3
    PARTIAL = 4

class EventReason(enum.IntEnum):
    GAP = 1
    CONNECT = 2
    DISCONNECT = 3
    ROTATE = 4
    PROTOCOL = 5
    SUBSCRIBE = 6
    WATCHDOG = 7

KIND_ROWS: list[tuple[str, int, str]]
REJECT_ROWS: list[tuple[str, int, str]]
SLOT_ROWS: list[tuple[str, int, str]]
EVENT_REASON_ROWS: list[tuple[str, int, str]]
SLOT_NAMES: tuple[str, ...]
