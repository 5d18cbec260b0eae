"""The simulator's REST API (aiohttp over TLS): depth snapshots, exchangeInfo, time.

Request weight is counted per client IP in fixed windows of ``weight_window`` seconds (one
minute on the exchange), laid from the moment the server starts: a short session never
straddles a boundary by chance, so its used-weight headers are reproducible (decision 0102).
Over the limit the answer is 429 with ``Retry-After``, and after ``ban_after`` further requests
while limited, 418 for ``ban_seconds``: the exchange's documented answers (Binance spot REST
API docs, "LIMITS": 429 with Retry-After, then an automatic 418 ban of 2 minutes up to 3 days).
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from aiohttp import web

from .market import SPOT

if TYPE_CHECKING:  # pragma: no cover
    from . import ExchangeSimulator

SPOT_MAX_LIMIT = 5000
USDM_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def spot_depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def usdm_depth_weight(limit: int) -> int:
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _json(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class _IPState:
    __slots__ = ("banned_until", "over", "used", "window")

    def __init__(self) -> None:
        self.window = -1
        self.used = 0
        self.over = 0
        self.banned_until = 0.0


class RestServer:
    """aiohttp application on its own port; shares the simulator's market and faults."""

    def __init__(self, sim: ExchangeSimulator):
        self.sim = sim
        self.cfg = sim.config
        self.ips: dict[str, _IPState] = {}
        self.stale_snapshots = 0
        self.stale_back: int | None = None
        self.delay = 0.0
        self.requests = 0
        self.peak_weight = 0  # most weight any IP used in one window
        # (monotonic arrival time, path, symbol, status, Retry-After or None) of recent depth
        # requests: lets a
        # test check a client honoured Retry-After / a ban (bounded)
        self.log: deque[tuple[float, str, str, int, float | None]] = deque(maxlen=100_000)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.epoch = 0.0  # monotonic time the weight windows start from: set in start()
        app = web.Application()
        if self.cfg.market == SPOT:
            app.router.add_get("/api/v3/depth", self.depth)
            app.router.add_get("/api/v3/exchangeInfo", self.exchange_info)
            app.router.add_get("/api/v3/time", self.time)
        else:
            app.router.add_get("/fapi/v1/depth", self.depth)
            app.router.add_get("/fapi/v1/exchangeInfo", self.exchange_info)
            app.router.add_get("/fapi/v1/time", self.time)
        self.app = app

    async def start(self, ssl_context: ssl.SSLContext) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.cfg.host, self.cfg.rest_port, ssl_context=ssl_context)
        await site.start()
        self.epoch = time.monotonic()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # ------------------------------------------------------------------ weight
    def _charge(
        self, request: web.Request, weight: int
    ) -> tuple[web.Response | None, dict[str, str]]:
        ip = request.remote or "?"
        st = self.ips.setdefault(ip, _IPState())
        now = time.monotonic()
        win = self.cfg.weight_window
        w = int((now - self.epoch) // win)
        if w != st.window:
            st.window, st.used, st.over = w, 0, 0
        retry = max(1, math.ceil(self.epoch + (w + 1) * win - now))
        if st.banned_until > now:
            secs = max(1, math.ceil(st.banned_until - now))
            return _json(
                {
                    "code": -1003,
                    "msg": f"Way too many requests; IP({ip}) banned until "
                    f"{int((time.time() + secs) * 1000)}. Please use the websocket for live "
                    f"updates to avoid bans.",
                },
                418,
                {"Retry-After": str(secs)},
            ), {}
        if st.used + weight > self.cfg.weight_limit:
            st.over += 1
            if st.over > self.cfg.ban_after:
                st.banned_until = now + self.cfg.ban_seconds
                secs = max(1, math.ceil(self.cfg.ban_seconds))
                return _json(
                    {
                        "code": -1003,
                        "msg": f"Way too many requests; IP({ip}) banned "
                        f"until {int((time.time() + secs) * 1000)}.",
                    },
                    418,
                    {"Retry-After": str(secs)},
                ), {}
            return _json(
                {
                    "code": -1003,
                    "msg": f"Too many requests; current limit of IP({ip}) is "
                    f"{self.cfg.weight_limit} requests per minute. Please use the websocket "
                    f"for live updates to avoid polling the API.",
                },
                429,
                {"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(st.used)},
            ), {}
        st.used += weight
        self.peak_weight = max(self.peak_weight, st.used)
        return None, {"X-MBX-USED-WEIGHT-1M": str(st.used)}

    # ------------------------------------------------------------------ endpoints
    async def depth(self, request: web.Request) -> web.Response:
        t = time.monotonic()
        resp = await self._depth(request)
        ra = resp.headers.get("Retry-After")
        self.log.append(
            (
                t,
                request.path,
                request.query.get("symbol", "").upper(),
                resp.status,
                float(ra) if ra is not None else None,
            )
        )
        return resp

    async def _depth(self, request: web.Request) -> web.Response:
        self.requests += 1
        spot = self.cfg.market == SPOT
        q = request.query
        raw = q.get("limit")
        if raw is None:
            limit = 100 if spot else 500
        else:
            try:
                limit = int(raw)
            except ValueError:
                return _json(
                    {
                        "code": -1100,
                        "msg": "Illegal characters found in parameter 'limit'; "
                        "legal range is '^[0-9]{1,20}$'.",
                    },
                    400,
                )
            if spot:
                if limit < 1:
                    return _json(
                        {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."},
                        400,
                    )
                limit = min(limit, SPOT_MAX_LIMIT)  # larger values are truncated to 5000
            elif limit not in USDM_LIMITS:
                return _json(
                    {"code": -1130, "msg": "Data sent for paramter 'limit' is not valid."}, 400
                )
        weight = spot_depth_weight(limit) if spot else usdm_depth_weight(limit)
        resp, headers = self._charge(request, weight)
        if resp is not None:
            return resp
        symbol = q.get("symbol", "").upper()
        if symbol not in self.sim.market.books:
            return _json({"code": -1121, "msg": "Invalid symbol."}, 400, headers)
        if self.delay:
            await asyncio.sleep(self.delay)
        book = self.sim.market.book(symbol)
        if self.stale_snapshots > 0:
            # A snapshot older than anything a fresh subscriber can have buffered.
            self.stale_snapshots -= 1
            back = self.stale_back
            uid = book.oldest_id() if back is None else max(book.oldest_id(), book.last_id - back)
            bids, asks = book.book_at(uid, limit)
        else:
            uid, bids, asks = book.snapshot(limit)
        self.sim.snapshots.append((symbol, uid))
        body: dict[str, object] = {"lastUpdateId": uid}
        if not spot:
            now = self.sim.now_ms()
            body["E"], body["T"] = now, now - 1
        body["bids"] = [list(x) for x in bids]
        body["asks"] = [list(x) for x in asks]
        return _json(body, 200, headers)

    async def exchange_info(self, request: web.Request) -> web.Response:
        resp, headers = self._charge(request, 20 if self.cfg.market == SPOT else 1)
        if resp is not None:
            return resp
        syms = []
        for book in self.sim.market.books.values():
            s = book.spec
            pd, qd = s.price_decimals, s.qty_decimals
            entry: dict[str, object] = {
                "symbol": s.symbol,
                "status": "TRADING",
                "baseAsset": s.base,
                "quoteAsset": s.quote,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": fmt_p_(s.tick_size, pd),
                        "maxPrice": fmt_p_("1000000", pd),
                        "tickSize": fmt_p_(s.tick_size, pd),
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": fmt_p_(s.step_size, qd),
                        "maxQty": fmt_p_("9000", qd),
                        "stepSize": fmt_p_(s.step_size, qd),
                    },
                ],
            }
            if self.cfg.market == SPOT:
                entry.update(baseAssetPrecision=8, quotePrecision=8, quoteAssetPrecision=8)
            else:
                entry.update(pricePrecision=pd, quantityPrecision=qd, contractType="PERPETUAL")
            syms.append(entry)
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.cfg.weight_limit,
            }
        ]
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.sim.now_ms(),
                "rateLimits": limits,
                "exchangeFilters": [],
                "symbols": syms,
            },
            200,
            headers,
        )

    async def time(self, request: web.Request) -> web.Response:
        resp, headers = self._charge(request, 1)
        if resp is not None:
            return resp
        return _json({"serverTime": self.sim.now_ms()}, 200, headers)


def fmt_p_(value: str, decimals: int) -> str:
    """Decimal string with exactly ``decimals`` digits (``"0.01", 8 -> "0.01000000"``)."""
    return f"{Decimal(value):.{decimals}f}"
