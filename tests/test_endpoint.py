"""Endpoint and configuration objects: every wrong value raises at construction, naming
itself; the default TLS context honours SSL_CERT_FILE; one endpoint serves the feed, the order
book and its snapshots (against the simulator over TLS)."""

from __future__ import annotations

import ssl

import pytest
from feed_fixtures import until
from sim_fixtures import run

import fastfeed
from fastfeed import BinanceFeed, BookConfig, Endpoint, FeedConfig, OrderBook
from fastfeed.book.snapshots import SnapshotClient
from fastfeed.sim import ExchangeSimulator

SIM = dict(seed=5, rate=200, interval_scale=0.2, symbols=("BTCUSDT", "ETHUSDT"))


# ---------------------------------------------------------------------------- Endpoint


def test_endpoint_defaults_are_the_exchange():
    spot, usdm = Endpoint(), Endpoint("usdm")
    assert spot.ws_url == "wss://stream.binance.com:9443"
    assert spot.rest_url == "https://api.binance.com"
    assert usdm.ws_url == "wss://fstream.binance.com"
    assert usdm.rest_url == "https://fapi.binance.com"
    assert spot.host() == "stream.binance.com:9443" and usdm.host("rest") == "fapi.binance.com:443"


def test_endpoint_default_tls_context_is_made_once_and_shared():
    ep = Endpoint()
    ctx = ep.ssl
    assert ctx is ep.ssl
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        (dict(market="futures"), ValueError, ["market", "'futures'"]),
        (dict(ws_url="ws://127.0.0.1:9443"), ValueError, ["ws://127.0.0.1:9443", "wss://"]),
        (dict(ws_url="https://127.0.0.1:9443"), ValueError, ["https://127.0.0.1:9443", "rest_url"]),
        (dict(ws_url="not a url"), ValueError, ["'not a url'"]),
        (dict(ws_url="wss://host:99999"), ValueError, ["wss://host:99999"]),
        (dict(ws_url="wss://host:port"), ValueError, ["wss://host:port"]),
        (dict(ws_url="wss://stream.binance.com:9443/ws"), ValueError, ["/ws", "base URL"]),
        (dict(ws_url="wss://h/stream?streams=a@trade"), ValueError, ["?query"]),
        (dict(ws_url="wss://:9443"), ValueError, ["no host"]),
        (dict(ws_url=9443), TypeError, ["ws_url", "9443"]),
        (dict(rest_url="http://127.0.0.1:1"), ValueError, ["http://127.0.0.1:1", "https://"]),
        (dict(rest_url="wss://127.0.0.1:1"), ValueError, ["ws_url"]),
        (dict(rest_url="https://api.binance.com/api/v3/depth"), ValueError, ["/api/v3/depth"]),
        (dict(ssl=True), TypeError, ["ssl", "True", "SSLContext"]),
        (dict(ssl="/etc/ca.pem"), TypeError, ["ssl", "/etc/ca.pem"]),
    ],
)
def test_endpoint_refuses_wrong_values_naming_them(kwargs, exc, words):
    with pytest.raises(exc) as ei:
        Endpoint(**kwargs)
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))


def test_endpoint_replace_keeps_the_rest():
    ctx = ssl.create_default_context()
    ep = Endpoint("usdm", "wss://127.0.0.1:1", "https://127.0.0.1:2", ctx)
    ep2 = ep.replace(rest_url="https://127.0.0.1:3/")
    assert (ep2.market, ep2.ws_url, ep2.rest_url, ep2.ssl) == (
        "usdm",
        "wss://127.0.0.1:1",
        "https://127.0.0.1:3",
        ctx,
    )
    assert ep == Endpoint("usdm", "wss://127.0.0.1:1/", "https://127.0.0.1:2", ctx)
    assert "usdm" in repr(ep)


def test_default_ssl_context_cafile_missing_is_named(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=r"nope\.pem") as ei:
        fastfeed.default_ssl_context(cafile=missing)
    assert isinstance(ei.value.__cause__, OSError)


def test_ssl_cert_file_names_a_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "corp.pem"))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(ValueError, match=r"corp\.pem.*SSL_CERT_FILE"):
        fastfeed.default_ssl_context()


def test_default_context_honours_ssl_cert_file(monkeypatch):
    """A corporate TLS proxy's CA (here the simulator's) given by SSL_CERT_FILE is trusted by
    the default context: the feed connects with no ssl= at all."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            monkeypatch.setenv("SSL_CERT_FILE", sim.ca_file)
            monkeypatch.delenv("SSL_CERT_DIR", raising=False)
            async with BinanceFeed(["btcusdt@aggTrade"], url=sim.ws_url, start_timeout=10) as feed:
                await until(lambda: feed.trades.written > 0, 10, "data", feed)

    run(body(), 30)


def test_cafile_context_trusts_that_ca_only():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            ctx = fastfeed.default_ssl_context(cafile=sim.ca_file)
            ep = Endpoint(ws_url=sim.ws_url, ssl=ctx)
            async with BinanceFeed(["btcusdt@aggTrade"], endpoint=ep) as feed:
                await until(lambda: feed.trades.written > 0, 10, "data", feed)

    run(body(), 30)


# ---------------------------------------------------------------------------- FeedConfig


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        (dict(time_unit="s"), ValueError, ["time_unit", "'s'"]),
        (dict(subscribe="live!"), ValueError, ["subscribe", "'live!'"]),
        (dict(backoff_initial=0), ValueError, ["backoff_initial", "0"]),
        (dict(backoff_initial=2.0, backoff_max=1.0), ValueError, ["backoff_max", "2"]),
        (dict(ping_interval=-1), ValueError, ["ping_interval"]),
        (dict(ping_interval="20"), TypeError, ["ping_interval", "'20'"]),
        (dict(start_timeout=float("nan")), ValueError, ["start_timeout"]),
        (dict(connect_timeout=True), TypeError, ["connect_timeout", "True"]),
        (dict(attempt_limit=2.5), TypeError, ["attempt_limit", "2.5"]),
        (dict(trades=1000), ValueError, ["trades", "power of two", "1000"]),
        (dict(events=0), ValueError, ["events"]),
        (dict(rcvbuf=10), ValueError, ["rcvbuf", "1024"]),
        (dict(control_rate=0), ValueError, ["control_rate"]),
    ],
)
def test_feed_config_refuses_wrong_values_naming_them(kwargs, exc, words):
    with pytest.raises(exc) as ei:
        FeedConfig(**kwargs)
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))
    # the same through the feed's keyword shortcuts
    with pytest.raises(exc):
        BinanceFeed(["btcusdt@aggTrade"], **kwargs)


def test_feed_config_optional_fields_and_shortcuts():
    cfg = FeedConfig(start_timeout=None, stream_timeout=None, ping_interval=5)
    feed = BinanceFeed("btcusdt@aggTrade", config=cfg, pong_timeout=9)
    assert feed.config.ping_interval == 5 and feed.config.start_timeout is None
    assert feed.pong_timeout == 5  # capped at the ping interval
    assert feed.streams == ["btcusdt@aggTrade"]
    with pytest.raises(TypeError, match="ping_intervall"):
        BinanceFeed(["btcusdt@aggTrade"], ping_intervall=5)
    with pytest.raises(TypeError, match="on_data"):
        BinanceFeed(["btcusdt@aggTrade"], on_data=5)
    with pytest.raises(TypeError, match="config"):
        BinanceFeed(["btcusdt@aggTrade"], config={"ping_interval": 5})


@pytest.mark.parametrize(
    ("streams", "exc", "words"),
    [
        (["btcusdt@aggtrade"], ValueError, ["btcusdt@aggtrade", "btcusdt@aggTrade"]),
        (["btcusdt@bookticker"], ValueError, ["btcusdt@bookTicker"]),
        (["BTCUSDT@aggTrade"], ValueError, ["lowercase", "btcusdt@aggTrade"]),
        ("btcusdt@aggTrade/btcusdt@trade", ValueError, ["list"]),
        (["btcusdt"], ValueError, ["'btcusdt'", "<symbol>@<type>"]),
        ([], ValueError, ["empty"]),
        ([""], ValueError, ["''"]),
        ([b"btcusdt@trade"], TypeError, ["b'btcusdt@trade'"]),
        (b"btcusdt@trade", TypeError, ["bytes"]),
        (None, TypeError, ["None"]),
    ],
)
def test_streams_checked_at_construction(streams, exc, words):
    with pytest.raises(exc) as ei:
        BinanceFeed(streams)
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))


def test_one_string_is_one_stream_never_characters():
    assert BinanceFeed("btcusdt@aggTrade").streams == ["btcusdt@aggTrade"]
    ok = ["btcusdt@depth20@100ms", "!bookTicker", "btcusdt@kline_1m", "!miniTicker@arr"]
    assert BinanceFeed(ok).streams == ok


def test_feed_shortcuts_replace_endpoint_fields():
    ctx = ssl.create_default_context()
    ep = Endpoint("spot", "wss://127.0.0.1:1", "https://127.0.0.1:2")
    feed = BinanceFeed(["btcusdt@aggTrade"], endpoint=ep, ssl=ctx)
    assert feed.endpoint.ssl is ctx and feed.endpoint.ws_url == "wss://127.0.0.1:1"
    assert BinanceFeed(["btcusdt@aggTrade"], market="usdm").endpoint == Endpoint("usdm")
    with pytest.raises(TypeError, match="endpoint"):
        BinanceFeed(["btcusdt@aggTrade"], endpoint="wss://127.0.0.1:1")


# ---------------------------------------------------------------------------- BookConfig


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        (dict(limit=0), ValueError, ["limit"]),
        (dict(workers=0), ValueError, ["workers"]),
        (dict(weight_fraction=1.5), ValueError, ["weight_fraction", "1.5"]),
        (dict(retry_initial=0), ValueError, ["retry_initial"]),
        (dict(validate_every="60"), TypeError, ["validate_every", "'60'"]),
        (dict(autopoll="yes"), TypeError, ["autopoll"]),
    ],
)
def test_book_config_refuses_wrong_values(kwargs, exc, words):
    with pytest.raises(exc) as ei:
        BookConfig(**kwargs)
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))
    feed = BinanceFeed(["btcusdt@depth@100ms"])
    with pytest.raises(exc):
        OrderBook(feed, **kwargs)


def test_order_book_market_checks_and_symbols_string():
    feed = BinanceFeed(["btcusdt@depth@100ms"])
    with pytest.raises(ValueError, match="USD-M depth limit"):
        OrderBook(BinanceFeed(["btcusdt@depth@100ms"], market="usdm"), limit=1001)
    with pytest.raises(ValueError, match="differs"):
        OrderBook(feed, endpoint=Endpoint("usdm"))
    with pytest.raises(TypeError, match="validate_evry"):
        OrderBook(feed, validate_evry=5)
    assert OrderBook(feed, "ethusdt").symbols == ["ETHUSDT"]  # one name, not 7 letters
    ob = OrderBook(feed, rest_url="https://127.0.0.1:5")
    assert ob.endpoint.ws_url == feed.endpoint.ws_url
    assert ob.client.base_url == "https://127.0.0.1:5"


def test_snapshot_client_takes_the_endpoint():
    ep = Endpoint("usdm", rest_url="https://127.0.0.1:7")
    c = SnapshotClient(endpoint=ep)
    assert (c.market, c.base_url, c.path) == ("usdm", "https://127.0.0.1:7", "/fapi/v1/depth")
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:7"):
        SnapshotClient("spot", "http://127.0.0.1:7")


# ---------------------------------------------------------------------------- one endpoint


def test_sim_endpoint_serves_feed_book_and_snapshots():
    """TLS and URLs given once: the simulator's endpoint goes to the feed, and the order book
    on that feed takes it (REST URL and TLS context) without being told anything."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            ep = sim.endpoint()
            assert ep.ws_url == sim.ws_url and ep.rest_url == sim.rest_url
            streams = ["btcusdt@depth@100ms", "ethusdt@depth@100ms"]
            async with (
                BinanceFeed(streams, endpoint=ep) as feed,
                OrderBook(feed, retry_initial=0.02, first_event_wait=0.1) as ob,
            ):
                assert ob.endpoint is ep and ob.client.endpoint.ssl is feed.endpoint.ssl
                await ob.wait_synced(timeout=20)
                assert ob.is_valid("BTCUSDT") and ob.is_valid("ETHUSDT")
                assert ob.stats()["rest"]["requests"] >= 2

    run(body(), 60)


def test_book_rest_url_alone_inherits_the_feeds_tls():
    """The README's old trap: a feed given url= and ssl=, an order book given rest_url= alone.
    The book takes the feed's TLS context, so its snapshots verify."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with (
                BinanceFeed(
                    ["btcusdt@depth@100ms"], url=sim.ws_url, ssl=sim.client_ssl_context()
                ) as feed,
                OrderBook(feed, rest_url=sim.rest_url, retry_initial=0.02) as ob,
            ):
                await ob.wait_synced(timeout=20)
                assert ob.stats()["snapshots"]["failures"] == {}

    run(body(), 60)


def test_sim_endpoint_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="not started"):
        ExchangeSimulator(**SIM).endpoint()
