"""fastfeed/core/_codes.h is the one definition of kinds, rejects, stream slots and event
reasons, and _binance.h's key table the one list of keys.  These tests read the headers as
text and check every other spelling against them (Cython names, Python enums, stubs, the
stream grammar's slots), and that no hand-typed copy creeps back.  The checks are shown
to fail on a changed header, so they cannot pass by comparing nothing."""

import ast
import re
from pathlib import Path

import pytest

import fastfeed
from fastfeed.core import _codes
from fastfeed.feed import _filter, streams

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "fastfeed" / "core"

# list macro in _codes.h -> (Python enum, C prefix, Cython prefix, _codes' table of rows)
LISTS = {
    "FF_KINDS": ("Kind", "FF_K_", "K_", "KIND_ROWS"),
    "FF_REJECTS": ("Reject", "FF_", "R_", "REJECT_ROWS"),
    "FF_SLOTS": ("Slot", "FF_S_", "S_", "SLOT_ROWS"),
    "FF_EVENT_REASONS": ("EventReason", "FF_EVR_", "EV_", "EVENT_REASON_ROWS"),
}


def header_lists(text):
    """{list macro: [(name, value, text), ...]} parsed from _codes.h's text."""
    out = {}
    for macro in LISTS:
        m = re.search(r"#define %s\(X\)(.*?)(?:\n\s*\n|\n#)" % macro, text, re.S)
        assert m, f"{macro} not found"
        rows = re.findall(r'X\((\w+),\s*(-?\d+),\s*"((?:[^"\\]|\\.)*)"\)', m.group(1))
        out[macro] = [(n, int(v), t) for n, v, t in rows]
    return out


def stub_enums(text):
    """{class name: {member: value}} of the IntEnum classes in a .pyi stub."""
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                st.targets[0].id: st.value.value
                for st in node.body
                if isinstance(st, ast.Assign) and isinstance(st.value, ast.Constant)
            }
    return out


def pxd_names(text):
    """{cython name: C name} of the extern enum members in _codes.pxd."""
    return dict(re.findall(r'^\s+(\w+) "(\w+)"\s*$', text, re.M))


def mismatches(header_text):
    """Every way in which the copies disagree with a _codes.h text (empty: they agree)."""
    lists = header_lists(header_text)
    problems = []
    pyi = stub_enums((CORE / "_codes.pyi").read_text())
    pxd = pxd_names((CORE / "_codes.pxd").read_text())
    for macro, (enum_name, c_prefix, cy_prefix, rows_name) in LISTS.items():
        rows = lists[macro]
        want = {n: v for n, v, _ in rows}
        if len(rows) != len(want) or len(set(want.values())) != len(want):
            problems.append(f"{macro}: a name or value twice")
        got = {m.name: m.value for m in getattr(_codes, enum_name)}
        if got != want:
            problems.append(f"{enum_name} (built at import) {got} != header {want}")
        if pyi.get(enum_name) != want:
            problems.append(f"_codes.pyi {enum_name} {pyi.get(enum_name)} != header {want}")
        cy = {k: v for k, v in pxd.items() if v.startswith(c_prefix) and not v.startswith("FF_N_")}
        if macro == "FF_REJECTS":
            cy = {k: v for k, v in cy.items() if k.startswith("R_") and k != "R_OK"}
        expect_cy = {cy_prefix + n: c_prefix + n for n in want}
        if cy != expect_cy:
            problems.append(f"_codes.pxd {macro}: {sorted(cy)} != {sorted(expect_cy)}")
        if getattr(_codes, rows_name) != rows:
            problems.append(f"_codes.{rows_name} differs from the header's rows")
    # values the lexer and the Cython code rely on
    rejects = {n: v for n, v, _ in lists["FF_REJECTS"]}
    if sorted(rejects.values()) != list(range(1, len(rejects) + 1)):
        problems.append("reject codes are not 1..N (reject_count is indexed by them)")
    if [rejects.get(n) for n in ("TRUNCATED", "SYNTAX", "BAD_UTF8", "TOO_DEEP")] != [1, 2, 3, 4]:
        problems.append("the fatal rejects are not 1..4 (FF_IS_FATAL)")
    kinds = [v for _, v, _ in lists["FF_KINDS"]]
    if kinds != list(range(len(kinds))) or lists["FF_KINDS"][-1][0] != "ERROR":
        problems.append("kinds are not 0..N-1 with ERROR last (K_ERROR + reason)")
    slots = {n: v for n, v, _ in lists["FF_SLOTS"]}
    if sorted(slots.values()) != list(range(len(slots))):
        problems.append("slots are not 0..N-1 (arrays are indexed by them)")
    return problems


def test_every_copy_agrees_with_codes_h():
    assert mismatches((CORE / "_codes.h").read_text()) == []


@pytest.mark.parametrize(
    "old,new",
    [
        ("X(TOO_LONG, 10,", "X(TOO_LONG, 11,"),
        ("X(GAP, 1,", "X(GAPS, 1,"),
        ('X(PARTIAL, 4, "partial")', 'X(PARTIAL, 4, "partial") X(KLINE, 5, "kline")'),
        ("X(ERROR, 6,", "X(ERRORS, 6,"),
    ],
)
def test_the_comparison_fails_when_the_header_changes(old, new):
    text = (CORE / "_codes.h").read_text()
    assert old in text
    assert mismatches(text.replace(old, new))


def test_public_names_are_the_generated_enums():
    assert fastfeed.Kind is _codes.Kind and fastfeed.Reject is _codes.Reject
    assert fastfeed.EventReason is _codes.EventReason
    assert fastfeed.core._decoder.Kind is _codes.Kind
    assert _filter.SLOT_NAMES == _codes.SLOT_NAMES == tuple(t for _, _, t in _codes.SLOT_ROWS)
    assert (
        streams.S_AGG,
        streams.S_TRADE,
        streams.S_DEPTH,
        streams.S_TICKER,
        streams.S_PARTIAL,
    ) == (
        _codes.Slot.AGG,
        _codes.Slot.TRADE,
        _codes.Slot.DEPTH,
        _codes.Slot.TICKER,
        _codes.Slot.PARTIAL,
    )
    assert "TOO_LONG" in fastfeed.Reject.__doc__ and "escaped" in fastfeed.Reject.__doc__


def test_no_hand_typed_copy_remains():
    # Enum classes or Cython enums spelling a code's value anywhere else are copies.
    copies = []
    for path in sorted((ROOT / "fastfeed").rglob("*")):
        if path.suffix not in (".py", ".pyx", ".pxd", ".pyi") or path.name.startswith("_codes."):
            continue
        text = path.read_text()
        for cls in ("Kind", "Reject", "EventReason", "Slot"):
            if re.search(rf"^class {cls}\b", text, re.M):
                copies.append(f"{path.name}: class {cls}")
        if path.suffix in (".pyx", ".pxd"):
            # (the book's EV_* are its own event codes, another vocabulary)
            prefixes = "K|R|S" if path.parent.name == "book" else "K|R|S|EV"
            for m in re.finditer(rf"^\s+((?:{prefixes})_[A-Z_]+)\s*=\s*\d+", text, re.M):
                if m.group(1) in pxd_names((CORE / "_codes.pxd").read_text()):
                    copies.append(f"{path.name}: {m.group(1)}")
        if re.search(r"SLOT_NAMES\s*=\s*\(", text):
            copies.append(f"{path.name}: SLOT_NAMES")
    assert copies == []


# ---- the key table


def key_table(text):
    keys1 = re.findall(r"X\('(.)', (\w+), (\w+), \w+\)", text)
    keysn = re.findall(r'X\("(\w+)", (\w+), (\w+), \w+\)', text)
    return {k: (slots, reader) for k, slots, reader in keys1 + keysn}


def reference_keys():
    """The keys the independent reference (tests/reference.py) gives a meaning to."""
    text = (ROOT / "tests" / "reference.py").read_text()
    keys = set(re.findall(r'_(?:int|dec|str|bool|levels|opt)\(d, "(\w+)"', text))
    keys |= set(re.findall(r'"(\w+)" in d\b', text))
    ctrl = re.search(r"for k in \(([^)]*)\)", text).group(1)
    keys |= set(re.findall(r'"(\w+)"', ctrl))
    keys |= set(re.findall(r'obj(?:\.get\(|\[)"(\w+)"', text))
    return keys


def test_key_table_is_the_reference_keys():
    table = key_table((CORE / "_binance.h").read_text())
    assert set(table) == reference_keys()
    assert {k for k, (_, reader) in table.items() if reader == "ctrl"} == {
        "result",
        "id",
        "code",
        "msg",
        "error",
    }


def test_nothing_but_the_table_names_a_key():
    # The scanners dispatch through the table: no key name spelled in their code paths.
    for name in ("_binance.h", "_compact.h"):
        text = (CORE / name).read_text()
        body = re.sub(r"#define FF_KEYS1.*?\n\n", "", text, flags=re.S)
        body = re.sub(r"#define FF_KEYSN.*?\n\n", "", body, flags=re.S)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        for key in ("lastUpdateId", "bids", "asks", "result", "error", '"msg"', '"code"'):
            assert key not in body, f"{name} names {key} outside the key table"
