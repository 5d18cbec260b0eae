"""fastfeed's codes as Python IntEnums, built at import from the tables in _codes.h.

The header is the one definition; nothing here spells a value.
"""
import enum

from fastfeed.core._codes cimport (N_EVENT_REASONS, N_KINDS, N_REJECTS, N_SLOTS, ff_code,
                                   ff_event_reason_table, ff_kind_table, ff_reject_table,
                                   ff_slot_table)


cdef list _rows(const ff_code* table, Py_ssize_t n):
    return [(table[i].name.decode(), table[i].value, table[i].text.decode()) for i in range(n)]


def _enum(name, rows, doc):
    e = enum.IntEnum(name, [(n, v) for n, v, _ in rows], module=__name__)
    e.__doc__ = doc + "\n\n" + "\n".join(f"- ``{n}`` ({v}): {t}" for n, v, t in rows)
    return e


#: (name, value, text) of each code, as _codes.h lists them.
KIND_ROWS = _rows(ff_kind_table, N_KINDS)
REJECT_ROWS = _rows(ff_reject_table, N_REJECTS - 1)
SLOT_ROWS = _rows(ff_slot_table, N_SLOTS)
EVENT_REASON_ROWS = _rows(ff_event_reason_table, N_EVENT_REASONS)

Kind = _enum("Kind", KIND_ROWS, "What one payload was.")
Reject = _enum("Reject", REJECT_ROWS, "Why a payload was Kind.ERROR.")
Slot = _enum("Slot", SLOT_ROWS, "A stream slot: one id sequence per (symbol, slot).")
EventReason = _enum("EventReason", EVENT_REASON_ROWS, "``reason`` of a row in ``feed.events``.")

#: The stream kind each slot carries, indexed by slot ("aggTrade", "trade", ...).
SLOT_NAMES = tuple(t for _, _, t in SLOT_ROWS)
