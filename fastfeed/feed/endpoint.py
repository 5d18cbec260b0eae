"""Where a feed connects: exchange URLs and the TLS context."""

from __future__ import annotations

import ssl as _ssl

SPOT_URL = "wss://stream.binance.com:9443"
USDM_URL = "wss://fstream.binance.com"


def default_ssl_context() -> _ssl.SSLContext:
    """Verifying client context: certifi's CAs when installed, else the system store;
    hostname checked."""
    try:
        import certifi

        ctx = _ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover
        ctx = _ssl.create_default_context()
    ctx.check_hostname = True
    ctx.verify_mode = _ssl.CERT_REQUIRED
    return ctx
