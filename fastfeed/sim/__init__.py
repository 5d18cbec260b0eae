"""fastfeed.sim: a local Binance-compatible exchange (TLS WebSocket + REST) with scriptable faults.

Pure Python, independent of fastfeed's compiled core::

    async with ExchangeSimulator(symbols=["BTCUSDT"], seed=1) as sim:
        url = sim.ws_url + "/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms"
        ctx = sim.client_ssl_context()
        ...                                  # connect any WebSocket client with ctx
        bids, asks = sim.book_at("BTCUSDT", update_id)
        sim.faults.depth_gap()               # next depth event goes missing

Modules: :mod:`.market` (order books and event formatting, sans-IO), :mod:`.control`
(SUBSCRIBE & co., sans-IO), :mod:`.wsserver` (picows server), :mod:`.rest` (aiohttp),
:mod:`.faults`, :mod:`.blast` (benchmark modes), :mod:`.tls` (trustme certificates),
:mod:`.config` (settings and command-line options), :mod:`.remote` (the simulator in a child
process, driven through a pipe: for measuring a client's memory alone).
"""

from .blast import BlastResult, PacedResult
from .config import SimConfig, add_arguments, config_from_args
from .faults import Faults
from .market import SPOT, USDM, Market, SymbolSpec, default_spec
from .simulator import ExchangeSimulator
from .wsserver import SimConnection

__all__ = [
    "SPOT",
    "USDM",
    "BlastResult",
    "ExchangeSimulator",
    "Faults",
    "Market",
    "PacedResult",
    "SimConfig",
    "SimConnection",
    "SymbolSpec",
    "add_arguments",
    "config_from_args",
    "default_spec",
]
