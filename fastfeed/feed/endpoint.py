"""Where fastfeed connects: :class:`Endpoint` (market, WebSocket URL, REST URL, TLS context),
shared by the feed, the order book and its snapshot client, so each is given once.

See docs/decisions/0210-endpoint-config-fail-fast.md.
"""

from __future__ import annotations

import os
import ssl as _ssl
from typing import Literal
from urllib.parse import urlsplit

Market = Literal["spot", "usdm"]
MARKETS: tuple[Market, ...] = ("spot", "usdm")

SPOT_URL = "wss://stream.binance.com:9443"
# The spot stream host's other documented port: a second leg of a redundant feed
# (FeedConfig.leg_urls) may use it, so the two legs do not share a listener.
SPOT_URL_ALT = "wss://stream.binance.com:443"
USDM_URL = "wss://fstream.binance.com"
SPOT_REST_URL = "https://api.binance.com"
USDM_REST_URL = "https://fapi.binance.com"

# Paths the feed and the snapshot client add themselves: a base URL ending in one of them is
# a full URL pasted where a base belongs (it would become ".../ws/stream" and get a 404).
_WS_TAILS = ("/ws", "/stream", "/public", "/market")
_REST_TAILS = ("/api", "/api/v3", "/api/v3/depth", "/fapi", "/fapi/v1", "/fapi/v1/depth")


def check_market(market: object) -> Market:
    """``market`` itself if it is ``"spot"`` or ``"usdm"``; ``ValueError`` naming it if not."""
    if market == "spot":
        return "spot"
    if market == "usdm":
        return "usdm"
    raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")


def default_ssl_context(cafile: str | os.PathLike[str] | None = None) -> _ssl.SSLContext:
    """A verifying client ``SSLContext`` (certificate and host name checked).

    ``cafile``: trust exactly the CAs in this PEM file (the simulator's ``ca_file``, a
    corporate TLS proxy's CA).  Without it: the files named by ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when either is set (OpenSSL's own variables), else certifi's bundle, else
    the system store.  A path that cannot be loaded raises ``ValueError`` naming it.
    """
    capath = None
    source = "cafile"
    if cafile is None:
        cafile = os.environ.get("SSL_CERT_FILE") or None
        capath = os.environ.get("SSL_CERT_DIR") or None
        source = "SSL_CERT_FILE/SSL_CERT_DIR"
        if cafile is None and capath is None:
            try:
                import certifi

                cafile, source = certifi.where(), "certifi"
            except ImportError:  # pragma: no cover - certifi is a dependency
                return _ssl.create_default_context()
    try:
        ctx = _ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, _ssl.SSLError) as e:
        where = ", ".join(repr(os.fspath(p)) for p in (cafile, capath) if p is not None)
        raise ValueError(f"cannot load CA certificates from {where} ({source}): {e}") from e
    ctx.check_hostname = True
    ctx.verify_mode = _ssl.CERT_REQUIRED
    return ctx


def _check_url(
    what: str, url: object, scheme: str, wrong: dict[str, str], tails: tuple[str, ...]
) -> str:
    """``url`` without a trailing ``/`` if it is a base URL of ``scheme``; else ValueError
    (TypeError for a non-string) naming the value and the likely fix."""
    if not isinstance(url, str):
        raise TypeError(f"{what} must be a str URL, got {type(url).__name__} {url!r}")
    try:
        parts = urlsplit(url)
        _port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as e:
        raise ValueError(f"{what} {url!r} is not a valid URL: {e}") from e
    if parts.scheme != scheme:
        hint = wrong.get(parts.scheme, f"it must start with {scheme}://")
        raise ValueError(f"{what} {url!r}: {hint}")
    if not parts.hostname:
        raise ValueError(f"{what} {url!r} has no host name")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} {url!r} is a base URL: no ?query or #fragment")
    path = parts.path.rstrip("/")
    if path.endswith(tails):
        raise ValueError(
            f"{what} {url!r} is a base URL ({scheme}://host[:port]); fastfeed adds the path "
            f"itself, so drop {path!r}"
        )
    return url.rstrip("/")


def check_ws_url(url: object, what: str = "ws_url") -> str:
    """``url`` without a trailing ``/`` if it is a ``wss://host[:port]`` base URL; else
    ``ValueError`` (``TypeError`` for a non-string) naming ``what``, the value and the fix."""
    return _check_url(
        what,
        url,
        "wss",
        {
            "ws": "plain ws:// is not supported (Binance and the simulator serve "
            "WebSockets over TLS only): use wss://",
            "https": "that is a REST URL (rest_url=); the WebSocket URL starts with wss://",
            "http": "that is an HTTP URL; the WebSocket URL starts with wss://",
        },
        _WS_TAILS,
    )


class Endpoint:
    """Where to connect: market, WebSocket base URL, REST base URL and TLS context.

    ``Endpoint()`` is Binance spot; ``Endpoint("usdm")`` USD-M futures;
    ``sim.endpoint()`` the local simulator (its URLs and a context trusting its CA).
    One endpoint is shared by a :class:`~fastfeed.BinanceFeed` and the
    :class:`~fastfeed.OrderBook` on it, so URLs and TLS are given once.

    ``ws_url``: ``wss://host[:port]`` (default the market's stream host).  ``rest_url``:
    ``https://host[:port]`` (default the market's API host).  ``ssl``: an ``ssl.SSLContext``;
    ``None`` means :func:`default_ssl_context` (made on first use, then shared).  URLs are
    checked here: a ``ws://`` or ``https://`` WebSocket URL, a path such as ``/ws``, or a
    ``ssl=True`` raise at once, naming the value.
    """

    __slots__ = ("_ssl", "market", "rest_url", "ws_url")

    market: Market
    ws_url: str
    rest_url: str

    def __init__(
        self,
        market: Market = "spot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.market = check_market(market)
        spot = market == "spot"
        self.ws_url = check_ws_url(ws_url if ws_url is not None else SPOT_URL if spot else USDM_URL)
        self.rest_url = _check_url(
            "rest_url",
            rest_url if rest_url is not None else SPOT_REST_URL if spot else USDM_REST_URL,
            "https",
            {
                "http": "plain http:// is not supported: use https://",
                "wss": "that is a WebSocket URL (ws_url=); the REST URL starts with https://",
                "ws": "that is a WebSocket URL (ws_url=); the REST URL starts with https://",
            },
            _REST_TAILS,
        )
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(
                "ssl must be an ssl.SSLContext or None (None: a verifying default context; "
                "fastfeed.default_ssl_context(cafile=...) trusts a CA file), "
                f"got {type(ssl).__name__} {ssl!r}"
            )
        self._ssl = ssl

    @property
    def ssl(self) -> _ssl.SSLContext:
        """The TLS context (the default one is made on first use and kept, so every user of
        this endpoint shares one)."""
        if self._ssl is None:
            self._ssl = default_ssl_context()
        return self._ssl

    def replace(
        self,
        *,
        market: Market | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> Endpoint:
        """A copy with the given fields changed (``None``: keep this endpoint's)."""
        return Endpoint(
            market if market is not None else self.market,
            ws_url if ws_url is not None else self.ws_url,
            rest_url if rest_url is not None else self.rest_url,
            ssl if ssl is not None else self._ssl,
        )

    def host(self, which: Literal["ws", "rest"] = "ws") -> str:
        """``host:port`` of the WebSocket (or REST) URL, for messages and logs."""
        parts = urlsplit(self.ws_url if which == "ws" else self.rest_url)
        host = parts.hostname or ""
        return f"[{host}]:{parts.port or 443}" if ":" in host else f"{host}:{parts.port or 443}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        return (self.market, self.ws_url, self.rest_url, self._ssl) == (
            other.market,
            other.ws_url,
            other.rest_url,
            other._ssl,
        )

    def __hash__(self) -> int:
        return hash((self.market, self.ws_url, self.rest_url, id(self._ssl)))

    def __repr__(self) -> str:
        tls = "default TLS" if self._ssl is None else "own TLS context"
        return (
            f"Endpoint({self.market!r}, ws_url={self.ws_url!r}, rest_url={self.rest_url!r}, {tls})"
        )


__all__ = [
    "MARKETS",
    "SPOT_REST_URL",
    "SPOT_URL",
    "SPOT_URL_ALT",
    "USDM_REST_URL",
    "USDM_URL",
    "Endpoint",
    "Market",
    "check_market",
    "check_ws_url",
    "default_ssl_context",
]
