"""fastfeed's exception hierarchy.  Everything the feed raises at run time derives from
:class:`FeedError`; mistakes in arguments are ``TypeError`` / ``ValueError`` at construction.
Each error raised from another carries it as ``__cause__``."""

from __future__ import annotations


class FeedError(Exception):
    """Base class of every fastfeed feed error."""


class ConnectError(FeedError):
    """TCP connect, DNS or timeout failure while opening a connection."""


class HandshakeError(ConnectError):
    """The server answered the WebSocket upgrade with an HTTP status other than 101
    (``status``; None when the handshake failed without one).  ``url`` is the URL refused
    (streams included), ``retry_after`` the server's ``Retry-After`` in seconds."""

    def __init__(
        self,
        status: int | None,
        message: str = "",
        retry_after: float | None = None,
        url: str | None = None,
    ):
        text = f"handshake refused: HTTP {status} {message}".strip()
        super().__init__(text + (f" ({url})" if url else ""))
        self.status = status
        self.retry_after = retry_after
        self.url = url


class StartTimeoutError(ConnectError):
    """The feed was not up within ``start_timeout`` seconds while retrying errors that a
    retry can fix (refused, unreachable, DNS, timeouts); the last one is ``__cause__``."""


class TLSVerificationError(ConnectError):
    """The server's certificate did not verify (unknown CA, wrong host name, expired)."""


class SubscriptionError(FeedError):
    """The exchange rejected a SUBSCRIBE/UNSUBSCRIBE (``code``, ``msg`` from its reply), or
    the reply did not come within the acknowledgement timeout (``code`` is None).
    ``streams``: the streams of the refused request, when known."""

    def __init__(
        self,
        code: int | None,
        msg: str,
        request_id: object = None,
        streams: list[str] | None = None,
    ):
        super().__init__(
            f"subscription error {code}: {msg}"
            + (f" (id {request_id})" if request_id is not None else "")
            + (f"; streams {', '.join(streams)}" if streams else "")
        )
        self.code = code
        self.msg = msg
        self.request_id = request_id
        self.streams = streams


class ProtocolError(FeedError):
    """The peer broke the WebSocket protocol (oversized frame, bad fragment sequence)."""


__all__ = [
    "ConnectError",
    "FeedError",
    "HandshakeError",
    "ProtocolError",
    "StartTimeoutError",
    "SubscriptionError",
    "TLSVerificationError",
]
