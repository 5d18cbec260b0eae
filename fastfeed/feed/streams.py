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
    elif kind.startswith("depth") and kind[5:].isdigit():
        slot = S_PARTIAL
    elif kind == "bookTicker":
        slot = S_TICKER
    else:
        return None
    return sym.upper(), slot


def usdm_route(stream: str) -> str:
    """USD-M routing (binance-protocol.md section 1): depth and bookTicker on ``/public``,
    everything else on ``/market``."""
    kind = stream.partition("@")[2].split("@")[0]
    return (
        "public"
        if kind.startswith("depth") or kind == "bookTicker" or stream == "!bookTicker"
        else "market"
    )
