"""Binance stream names: which ring slot a stream feeds, and which USD-M route carries it.

The one place that knows the stream-name grammar (``<symbol>@<kind>[@<options>]``).
"""

from __future__ import annotations

from fastfeed.core._codes import Slot

# The slot codes of fastfeed/core/_codes.h (the one definition).
S_AGG, S_TRADE, S_DEPTH, S_TICKER, S_PARTIAL = (
    Slot.AGG,
    Slot.TRADE,
    Slot.DEPTH,
    Slot.TICKER,
    Slot.PARTIAL,
)


def stream_slot(stream: str) -> tuple[str, int] | None:
    """``"btcusdt@depth@100ms"`` -> ``("BTCUSDT", S_DEPTH)``; None for streams the rings do
    not carry per symbol (tickers of all symbols, klines, ...)."""
    sym, _, rest = stream.partition("@")
    if not rest or sym.startswith("!"):
        return None
    kind = rest.split("@")[0]
    if kind == "aggTrade":
        slot = S_AGG
    elif kind == "trade":
        slot = S_TRADE
    elif kind == "depth":
        slot = S_DEPTH
    elif kind.startswith("depth") and kind[5:].isascii() and kind[5:].isdigit():
        slot = S_PARTIAL
    elif kind == "bookTicker":
        slot = S_TICKER
    else:
        return None
    # ASCII letters only, as the decoder does (str.upper would turn "ß" into "SS")
    return sym.translate(_UPPER), slot


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def usdm_route(stream: str) -> str:
    """USD-M routing (Binance's USD-M futures WebSocket docs): depth and bookTicker on ``/public``,
    everything else on ``/market``."""
    kind = stream.partition("@")[2].split("@")[0]
    return (
        "public"
        if kind.startswith("depth") or kind == "bookTicker" or stream == "!bookTicker"
        else "market"
    )


# Stream types whose spelling is checked (names are case-sensitive on the exchange).  A type
# not listed here passes (the exchange decides: an unknown stream is refused at the handshake).
_KINDS = (
    "aggTrade",
    "trade",
    "depth",
    "bookTicker",
    "kline",
    "miniTicker",
    "ticker",
    "avgPrice",
    "markPrice",
    "forceOrder",
    "continuousKline",
    "rpiDepth",
    "referencePrice",
    "blockTrade",
    "compositeIndex",
    "contractInfo",
    "assetIndex",
)
_KIND_BY_LOWER = {k.lower(): k for k in _KINDS}
_BAD_CHARS = set(" \t\r\n/?&#")


def check_streams(streams: object) -> list[str]:
    """The stream names in ``streams`` as a list, or ``TypeError`` / ``ValueError`` naming the
    offending value: a lone string is one stream (never split into characters), names are
    non-empty, hold no ``/ ? & #`` or spaces, have lowercase symbols and correctly spelled
    stream types (``btcusdt@aggtrade`` is refused, naming ``aggTrade``)."""
    if isinstance(streams, str):
        streams = [streams]
    elif isinstance(streams, (bytes, bytearray)) or not hasattr(streams, "__iter__"):
        raise TypeError(
            f"streams must be a list of stream names, got {type(streams).__name__} {streams!r}"
        )
    out: list[str] = []
    for s in streams:
        if not isinstance(s, str):
            raise TypeError(f"stream names are strings, got {type(s).__name__} {s!r}")
        if not s or _BAD_CHARS & set(s):
            hint = " (give a list, not one '/'-joined string)" if "/" in s else ""
            raise ValueError(f"invalid stream name {s!r}{hint}")
        sym, at, rest = s.partition("@")
        if not s.startswith("!"):
            if not at or not sym or not rest:
                raise ValueError(
                    f"invalid stream name {s!r}: expected <symbol>@<type>, e.g. 'btcusdt@aggTrade'"
                )
            if sym != sym.lower():
                raise ValueError(
                    f"invalid stream name {s!r}: symbols in stream names are lowercase "
                    f"({sym.lower()}@{rest!s})"
                )
        kind = rest.split("@")[0] if not s.startswith("!") else ""
        base = kind.split("_")[0].rstrip("0123456789") or kind
        right = _KIND_BY_LOWER.get(base.lower())
        if right is not None and right != base:
            fixed = s.replace("@" + base, "@" + right, 1)
            raise ValueError(
                f"invalid stream name {s!r}: stream types are case-sensitive, "
                f"did you mean {fixed!r}?"
            )
        if s not in out:
            out.append(s)
    if not out:
        raise ValueError("streams is empty: give at least one, e.g. ['btcusdt@aggTrade']")
    return out
