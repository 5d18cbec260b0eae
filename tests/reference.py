"""An independent reference for the Binance decoder, built on the stdlib ``json`` module,
``float()`` and ``decimal``.  It implements the contract in README.md ("What a payload
becomes") from scratch, sharing no code with fastfeed, so the tests compare two
implementations of one specification.
"""

import json
import math
import re
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

FP_SCALE = 10**8
FP_NONE = -(2**63)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

DECIMAL_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
NAN = float("nan")


class Invalid(Exception):
    """The payload is not a valid message of its kind."""


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(payload: bytes):
    """Strict RFC 8259 parsing: UTF-8, no NaN/Infinity, no control characters in strings."""
    return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)


def _int(d, k):
    v = d[k]
    if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
        raise Invalid(k)
    return v


def _dec(d, k):
    v = d[k]
    if not isinstance(v, str) or not DECIMAL_RE.fullmatch(v):
        raise Invalid(k)
    f = float(v)
    exact = Decimal(v)
    if exact == 0:
        return f, 0
    try:
        # exact arithmetic: the default context's 28 digits would round a long fraction
        # (1.54 followed by 90 digits) to a value that looks representable
        with localcontext() as ctx:
            ctx.prec, ctx.Emax, ctx.Emin = len(v) + 40, MAX_EMAX, MIN_EMIN
            scaled = exact * FP_SCALE
        fits = INT64_MIN < scaled <= INT64_MAX and scaled == scaled.to_integral_value()
    except ArithmeticError:  # exponents beyond the decimal context: far outside int64
        fits = False
    return f, int(scaled) if fits else FP_NONE


def _levels(d, k):
    v = d[k]
    if not isinstance(v, list):
        raise Invalid(k)
    out = []
    for lv in v:
        if not isinstance(lv, list) or len(lv) != 2:
            raise Invalid(k)
        out.append((_dec({"x": lv[0]}, "x"), _dec({"x": lv[1]}, "x")))
    return out


def _opt(d, k, conv, default):
    return conv(d, k) if k in d else default


def _str(d, k):
    v = d[k]
    if not isinstance(v, str):
        raise Invalid(k)
    return v


def _bool(d, k):
    v = d[k]
    if type(v) is not bool:
        raise Invalid(k)
    return v


def _stream_symbol(stream):
    prefix = stream.split("@", 1)[0]
    return "".join(c.upper() if "a" <= c <= "z" else c for c in prefix)


def _stream_is_partial(stream):
    if "@" not in stream:
        return False
    # "<symbol>@depth<ASCII digits>[@...]": the part up to the next "@" decides
    kind = stream.split("@", 1)[1].split("@", 1)[0]
    return re.fullmatch(r"depth[0-9]+", kind, re.ASCII) is not None


def _level_rows(head, bids, asks, partial):
    rows = []
    for side, levels in ((0, bids), (1, asks)):
        for i, ((p, pfp), (q, qfp)) in enumerate(levels):
            row = dict(head, side=side, price=p, qty=q, price_fp=pfp, qty_fp=qfp, flags=0)
            if partial:
                row["level"] = i
            rows.append(row)
    if not rows:
        row = dict(head, side=-1, price=NAN, qty=NAN, price_fp=FP_NONE, qty_fp=FP_NONE, flags=0)
        if partial:
            row["level"] = 0
        rows.append(row)
    rows[-1]["flags"] = 1
    return rows


def _classify(d, stream, default_symbol):
    if "e" in d:
        e = _str(d, "e")
        if e in ("aggTrade", "trade"):
            agg = e == "aggTrade"
            if agg:
                tid, first, last = _int(d, "a"), _int(d, "f"), _int(d, "l")
                nq = _opt(d, "nq", _dec, (NAN, None))[0]
            else:
                tid = first = last = _int(d, "t")
                nq = NAN
            p, pfp = _dec(d, "p")
            q, qfp = _dec(d, "q")
            return (
                "TRADE",
                "trades",
                [
                    dict(
                        event_time=_int(d, "E"),
                        trade_time=_int(d, "T"),
                        trade_id=tid,
                        first_id=first,
                        last_id=last,
                        price=p,
                        qty=q,
                        normal_qty=nq,
                        price_fp=pfp,
                        qty_fp=qfp,
                        symbol=_str(d, "s"),
                        buyer_maker=_bool(d, "m"),
                        is_agg=agg,
                    )
                ],
            )
        if e == "depthUpdate":
            E, s, U, u = _int(d, "E"), _str(d, "s"), _int(d, "U"), _int(d, "u")
            bids, asks = _levels(d, "b"), _levels(d, "a")
            T, pu = _opt(d, "T", _int, -1), _opt(d, "pu", _int, -1)
            if stream is not None and _stream_is_partial(stream):
                return (
                    "PARTIAL",
                    "partial",
                    _level_rows(dict(event_time=E, last_id=u, symbol=s), bids, asks, True),
                )
            return (
                "DEPTH",
                "depth",
                _level_rows(
                    dict(
                        event_time=E,
                        transact_time=T,
                        first_id=U,
                        last_id=u,
                        prev_last_id=pu,
                        symbol=s,
                    ),
                    bids,
                    asks,
                    False,
                ),
            )
        if e == "bookTicker":
            return _ticker(d)
        if e == "serverShutdown":
            return "CONTROL", None, []
        return "UNKNOWN", None, []
    if "lastUpdateId" in d:
        luid, bids, asks = _int(d, "lastUpdateId"), _levels(d, "bids"), _levels(d, "asks")
        E = _opt(d, "E", _int, -1)
        _opt(d, "T", _int, -1)
        symbol = _stream_symbol(stream) if stream else default_symbol
        return (
            "PARTIAL",
            "partial",
            _level_rows(dict(event_time=E, last_id=luid, symbol=symbol), bids, asks, True),
        )
    if "u" in d and "s" in d:
        return _ticker(d)
    if any(k in d for k in ("result", "id", "code", "msg", "error")):
        return "CONTROL", None, []
    return "UNKNOWN", None, []


def _ticker(d):
    bp, bpfp = _dec(d, "b")
    bq, bqfp = _dec(d, "B")
    ap, apfp = _dec(d, "a")
    aq, aqfp = _dec(d, "A")
    return (
        "TICKER",
        "tickers",
        [
            dict(
                event_time=_opt(d, "E", _int, -1),
                transact_time=_opt(d, "T", _int, -1),
                update_id=_int(d, "u"),
                bid_price=bp,
                bid_qty=bq,
                ask_price=ap,
                ask_qty=aq,
                bid_price_fp=bpfp,
                bid_qty_fp=bqfp,
                ask_price_fp=apfp,
                ask_qty_fp=aqfp,
                symbol=_str(d, "s"),
            )
        ],
    )


def reference_decode(payload: bytes, default_symbol: str = ""):
    """-> (kind name, ring name or None, list of row dicts with symbol names)."""
    try:
        obj = parse_json(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "ERROR", None, []
    if not isinstance(obj, dict):
        return "UNKNOWN", None, []
    try:
        if isinstance(obj.get("stream"), str) and "data" in obj:
            if not isinstance(obj["data"], dict):
                return "UNKNOWN", None, []
            return _classify(obj["data"], obj["stream"], default_symbol)
        return _classify(obj, None, default_symbol)
    except (Invalid, KeyError):  # KeyError: a required field is missing
        return "ERROR", None, []


def same_value(a, b):
    """Exact equality, bit for bit for floats (so -0.0 != 0.0), with NaN == NaN."""
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def rows_match(dec, ring_rows, expected):
    """Compares decoder rows (numpy records) with reference row dicts; returns a list of
    mismatch descriptions (empty when equal)."""
    problems = []
    if len(ring_rows) != len(expected):
        return [f"row count {len(ring_rows)} != {len(expected)}"]
    for i, (got, exp) in enumerate(zip(ring_rows, expected)):
        for field, want in exp.items():
            have = got[field]
            if field == "symbol":
                have = dec.symbol(int(have))
            elif isinstance(want, bool):
                have = bool(have)
            elif isinstance(want, float):
                have = float(have)
            else:
                have = int(have)
            if not same_value(have, want):
                problems.append(f"row {i} {field}: {have!r} != {want!r}")
    return problems
