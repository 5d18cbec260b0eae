"""First contact: every mistake of issue 12 fails fast with a typed error that names its cause.

Mistakes a retry cannot fix raise at construction (``TypeError`` / ``ValueError``) or on the
first start with a typed :class:`fastfeed.FeedError`, after one attempt (``failures`` counts
one) and well before ``start_timeout``; network errors are retried with backoff and logged
with the host until ``start_timeout``.  The real picows client over real TLS against the
simulator on 127.0.0.1 (docs/decisions/0210-endpoint-config-fail-fast.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time

import pytest
from feed_fixtures import until
from picows import WSInvalidStatusError
from sim_fixtures import run

import fastfeed
from fastfeed import (
    BinanceFeed,
    ConnectError,
    HandshakeError,
    StartTimeoutError,
    SubscriptionError,
    TLSVerificationError,
)
from fastfeed.sim import ExchangeSimulator

SIM = dict(seed=7, rate=200, interval_scale=0.2)
FAST = 1.0  # seconds: "at once" (one TLS handshake on loopback), far below any retry loop
QUICK_RETRY = dict(backoff_initial=0.05, backoff_max=0.1)


async def fails_at_once(feed: BinanceFeed, exc: type[BaseException]) -> BaseException:
    """Start ``feed``: it must raise ``exc`` after one connection attempt, in under FAST
    seconds (no retry loop).  Returns the error."""
    t0 = time.monotonic()
    with pytest.raises(exc) as ei:
        await feed.start()
    took = time.monotonic() - t0
    assert took < FAST, took
    assert sum(feed.failures.values()) == 1 and feed.failures[exc.__name__] == 1, feed.failures
    return ei.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- at construction


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        (dict(streams="btcusdt@aggtrade"), ValueError, ["btcusdt@aggtrade", "aggTrade"]),
        (dict(url="https://127.0.0.1:9443"), ValueError, ["https://127.0.0.1:9443", "wss://"]),
        (dict(url="ws://127.0.0.1:9443"), ValueError, ["ws://127.0.0.1:9443", "wss://"]),
        (dict(url="not a url"), ValueError, ["not a url"]),
        (dict(ssl=True), TypeError, ["ssl", "True"]),
        (dict(streams=[]), ValueError, ["empty"]),
        (dict(time_unit="s"), ValueError, ["time_unit", "'s'"]),
        (dict(backoff_initial=0), ValueError, ["backoff_initial"]),
        (dict(market="futures"), ValueError, ["'futures'"]),
    ],
)
def test_configuration_mistakes_raise_at_construction(kwargs, exc, words):
    kw = {"streams": ["btcusdt@aggTrade"], **kwargs}
    t0 = time.monotonic()
    with pytest.raises(exc) as ei:
        BinanceFeed(**kw)
    assert time.monotonic() - t0 < FAST
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))


def test_a_string_of_streams_is_one_stream():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with BinanceFeed("btcusdt@aggTrade", endpoint=sim.endpoint()) as feed:
                assert feed.streams == ["btcusdt@aggTrade"]
                await until(lambda: feed.trades.written > 0, 10, "data", feed)

    run(body(), 30)


# ---------------------------------------------------------------------------- on first start


def test_untrusted_certificate_fails_at_once():
    """No ssl= against the simulator: the default context does not know its CA."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            feed = BinanceFeed(["btcusdt@aggTrade"], url=sim.ws_url, **QUICK_RETRY)
            err = await fails_at_once(feed, TLSVerificationError)
            host = sim.ws_url.removeprefix("wss://")
            assert host in str(err) and "did not verify" in str(err)
            assert "sim.endpoint()" in str(err)  # how to fix it
            assert isinstance(err.__cause__, ssl.SSLCertVerificationError)

    run(body(), 30)


def test_rogue_certificate_fails_at_once():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            sim.faults.untrusted_cert(True)
            feed = BinanceFeed(["btcusdt@aggTrade"], endpoint=sim.endpoint(), **QUICK_RETRY)
            err = await fails_at_once(feed, TLSVerificationError)
            assert isinstance(err.__cause__, ssl.SSLCertVerificationError)

    run(body(), 30)


def test_stream_the_server_refuses_fails_at_once_naming_it():
    """A well-formed name the exchange does not serve: HTTP 400 at the handshake."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            streams = ["btcusdt@aggTrade", "nosuchusdt@aggTrade"]
            feed = BinanceFeed(streams, endpoint=sim.endpoint(), **QUICK_RETRY)
            err = await fails_at_once(feed, HandshakeError)
            assert err.status == 400
            assert "nosuchusdt@aggTrade" in str(err) and "invalid stream" in str(err)
            assert isinstance(err.__cause__, WSInvalidStatusError)

    run(body(), 30)


def test_stream_refused_by_live_subscribe_fails_at_once_naming_it():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            feed = BinanceFeed(
                ["nosuchusdt@trade"], endpoint=sim.endpoint(), subscribe="live", **QUICK_RETRY
            )
            err = await fails_at_once(feed, SubscriptionError)
            assert err.code is not None and err.streams == ["nosuchusdt@trade"]
            assert "nosuchusdt@trade" in str(err)
            assert isinstance(err.__cause__, SubscriptionError)

    run(body(), 30)


@pytest.mark.parametrize("status", [400, 403, 404, 451])
def test_4xx_handshake_refusal_fails_at_once_naming_the_url(status):
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            sim.faults.handshake(status)
            feed = BinanceFeed(["btcusdt@aggTrade"], endpoint=sim.endpoint(), **QUICK_RETRY)
            err = await fails_at_once(feed, HandshakeError)
            assert err.status == status and f"HTTP {status}" in str(err)
            assert sim.ws_url in str(err) and "btcusdt@aggTrade" in str(err)
            assert isinstance(err.__cause__, WSInvalidStatusError)

    run(body(), 30)


def test_port_that_does_not_speak_tls_fails_at_once():
    """wss:// to a plain-text server (a wrong port): the TLS handshake reads HTTP."""

    async def plain(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def body():
        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            feed = BinanceFeed(["btcusdt@aggTrade"], url=f"wss://127.0.0.1:{port}", **QUICK_RETRY)
            err = await fails_at_once(feed, ConnectError)
            assert f"127.0.0.1:{port}" in str(err) and "speak TLS" in str(err)
            assert isinstance(err.__cause__, ssl.SSLError)
        finally:
            server.close()
            await server.wait_closed()

    run(body(), 30)


def test_fatal_error_with_no_start_timeout_still_raises():
    """start_timeout=None waits for ever only for what a retry can fix."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            feed = BinanceFeed(
                ["btcusdt@aggTrade"], url=sim.ws_url, start_timeout=None, **QUICK_RETRY
            )
            await fails_at_once(feed, TLSVerificationError)

    run(body(), 30)


# ---------------------------------------------------------------------------- retried


def test_refused_connection_is_retried_logged_then_start_timeout(caplog):
    """A port nobody listens on: network errors may pass (the server may be starting), so
    they are retried with backoff, logged with the host, and end in StartTimeoutError that
    names start_timeout and carries the last error."""
    port = free_port()

    async def body():
        feed = BinanceFeed(
            ["btcusdt@aggTrade"], url=f"wss://127.0.0.1:{port}", start_timeout=0.5, **QUICK_RETRY
        )
        t0 = time.monotonic()
        with pytest.raises(StartTimeoutError) as ei:
            await feed.start()
        assert 0.5 <= time.monotonic() - t0 < 0.5 + FAST
        err = ei.value
        assert feed.failures["ConnectError"] >= 2  # retried
        assert "start_timeout=0.5" in str(err) and f"127.0.0.1:{port}" in str(err)
        assert "Connection refused" in str(err)
        assert isinstance(err.__cause__, ConnectError)
        assert isinstance(err.__cause__.__cause__, ConnectionRefusedError)

    with caplog.at_level(logging.WARNING, logger="fastfeed.feed"):
        run(body(), 30)
    retries = [r for r in caplog.records if "retry in" in r.getMessage()]
    assert retries and all(f"127.0.0.1:{port}" in r.getMessage() for r in retries)


def test_silent_server_is_retried_with_connect_timeout_named():
    """A server that accepts and never answers (a black hole): each attempt ends at
    connect_timeout, is retried, and start_timeout ends it, naming both."""
    held = []

    async def silent(reader, writer):
        held.append(writer)  # keep it open, say nothing

    async def body():
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            feed = BinanceFeed(
                ["btcusdt@aggTrade"],
                url=f"wss://127.0.0.1:{port}",
                connect_timeout=0.2,
                start_timeout=1.0,
                **QUICK_RETRY,
            )
            with pytest.raises(StartTimeoutError) as ei:
                await feed.start()
            assert feed.failures["ConnectError"] >= 2
            assert "start_timeout=1.0" in str(ei.value) and "connect_timeout=0.2" in str(ei.value)
            assert isinstance(ei.value.__cause__.__cause__, asyncio.TimeoutError)
        finally:
            for w in held:
                w.close()
            server.close()
            await server.wait_closed()

    run(body(), 30)


def test_503_is_retried_until_it_passes():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            sim.faults.handshake(503, count=2)  # Retry-After: 1 each
            feed = BinanceFeed(["btcusdt@aggTrade"], endpoint=sim.endpoint(), **QUICK_RETRY)
            async with feed:
                assert feed.failures["HandshakeError"] == 2
                await until(lambda: feed.trades.written > 0, 10, "data", feed)

    run(body(), 30)


# ---------------------------------------------------------------------------- logging


def test_every_logger_is_under_fastfeed(caplog):
    """picows logs under fastfeed.picows.<route>, not picows.*: one logger tree to aim."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with BinanceFeed(["btcusdt@aggTrade"], endpoint=sim.endpoint()) as feed:
                await until(lambda: feed.trades.written > 0, 10, "data", feed)

    with caplog.at_level(logging.DEBUG):
        run(body(), 30)
    client = [r.name for r in caplog.records if "picows" in r.name and "sim" not in r.name]
    assert any(n.startswith("fastfeed.picows.spot") for n in client), client
    assert not [n for n in client if not n.startswith("fastfeed.")], client


# ---------------------------------------------------------------------------- ring arguments


def test_ring_arguments_checked():
    ring = fastfeed.BinanceDecoder().trades
    with pytest.raises(ValueError, match="'bogus'"):
        ring.reader("bogus")
    with pytest.raises(TypeError, match=r"1\.5"):
        ring.read(1.5)
    with pytest.raises(ValueError, match="-1"):
        ring.read(0, limit=-1)
    with pytest.raises(TypeError, match="limit"):
        ring.read(0, limit=2.0)
    assert ring.read(0, limit=0).cursor == 0


# ---------------------------------------------------------------------------- order book


def test_book_snapshots_with_an_untrusted_certificate_say_so():
    """The order book keeps retrying (a running book never gives up), but waiting for it
    names why it is not synced: the snapshots' certificate."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with BinanceFeed(["btcusdt@depth@100ms"], endpoint=sim.endpoint()) as feed:
                other = fastfeed.default_ssl_context()  # does not know the simulator's CA
                async with fastfeed.OrderBook(
                    feed, ssl=other, retry_initial=0.05, first_event_wait=0.05
                ) as ob:
                    assert ob.client.endpoint.ssl is other
                    with pytest.raises(asyncio.TimeoutError) as ei:
                        await ob.wait_synced("BTCUSDT", timeout=1.0)
                    assert "BTCUSDT" in str(ei.value) and "'tls'" in str(ei.value)

    run(body(), 30)


@pytest.mark.parametrize("bad", [0, -1, (1 << 24) + 1])
def test_decoder_symbol_table_size_checked(bad):
    """A symbol table of no symbols would reject every message (TOO_MANY_SYMBOLS): refused at
    construction, naming the value."""
    with pytest.raises(ValueError, match=f"max_symbols must be in 1..16777216, got {bad}"):
        fastfeed.BinanceDecoder(max_symbols=bad)
    with pytest.raises(ValueError, match="max_symbols"):
        fastfeed.SymbolTable(bad)
