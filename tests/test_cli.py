"""The ``fastfeed`` command, run as a user runs it: a child process on a pseudo-terminal
(pexpect), so the live view, Ctrl-C and exit codes are the real ones.  ``--json`` and the
plain fallback run on pipes, where a program's output usually goes."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pexpect
import pytest
from children import child_env

import fastfeed

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\r")
START_PRICE = {"BTCUSDT": 61800.0, "ETHUSDT": 2680.0}  # fastfeed/sim/market.py


def _env(**extra) -> dict:
    env = child_env(COLUMNS="160", LINES="50", **extra)
    env.pop("NO_COLOR", None)
    return env


def spawn(*args, tmp_path, **env) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "fastfeed.cli", *args],
        env=_env(**env),
        cwd=str(tmp_path),
        dimensions=(50, 160),
        encoding="utf-8",
        codec_errors="replace",
        timeout=90,
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for the child to exit: (exit code, output without terminal escapes)."""
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus is None, f"killed by signal {child.signalstatus}"
    return child.exitstatus, ANSI.sub("", child.before)


def run_pipe(*args, tmp_path, timeout=90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastfeed.cli", *args],
        env=_env(),
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def unused_port() -> socket.socket:
    """A bound, non-listening socket: connecting to its port is refused for as long as it
    stays open."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


@pytest.mark.parametrize(
    "argv, says",
    [
        (["demo", "--fault", "bogus"], "argument --fault"),
        (["demo", "--fault", "1:nonsense"], "unknown name"),
        (["--log-level", "LOUD", "demo"], "argument --log-level"),
        (["demo", "--log-level", "LOUD"], "argument --log-level"),
        (["demo", "--seconds", "-1"], "argument --seconds"),
        (["demo", "--symbols", ","], "argument --symbols"),
        (["bogus"], "invalid choice"),
        ([], "required: COMMAND"),
        (["run"], "required: STREAM"),
        (["run", "btcusdt"], "not a stream name"),
        (["sim", "--fault", "bogus"], "argument --fault"),
    ],
)
def test_usage_errors_exit_2_with_usage_and_no_traceback(argv, says, tmp_path):
    code, out = finish(spawn(*argv, tmp_path=tmp_path))
    assert code == 2, out
    assert "usage: fastfeed" in out
    assert says in out
    assert "Traceback" not in out


def test_version(tmp_path):
    code, out = finish(spawn("--version", tmp_path=tmp_path))
    assert code == 0
    assert out.startswith(f"fastfeed {fastfeed.__version__} (Python ")


def test_entry_point(tmp_path):
    script = shutil.which("fastfeed", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("no fastfeed script beside this interpreter (not installed)")
    r = subprocess.run(
        [script, "--version"], env=_env(), cwd=str(tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith(f"fastfeed {fastfeed.__version__}")


def test_help_shows_defaults(tmp_path):
    code, out = finish(spawn("demo", "--help", tmp_path=tmp_path))
    assert code == 0
    flat = " ".join(out.split())
    assert "(default: BTCUSDT,ETHUSDT)" in flat and "(default: 500.0)" in flat
    assert "(default: False)" not in flat  # flags say nothing
    code, out = finish(spawn("sim", "--help", tmp_path=tmp_path))
    assert code == 0
    assert "default: 127.0.0.1" in out  # an option without help text gets its default too


def test_ctrl_c_while_connecting_is_clean(tmp_path):
    with unused_port() as s:
        port = s.getsockname()[1]
        child = spawn(
            "run", "--url", f"wss://127.0.0.1:{port}", "btcusdt@aggTrade", tmp_path=tmp_path
        )
        child.expect("connecting to")
        child.expect("Connection refused")  # it is retrying: still in the connect phase
        child.sendintr()
        code, out = finish(child)
    assert code == 130, out
    assert "interrupted while connecting" in out
    assert "failed attempt" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out


def test_seconds_bounds_the_connect_phase(tmp_path):
    with unused_port() as s:
        port = s.getsockname()[1]
        r = run_pipe(
            "run",
            "--url",
            f"wss://127.0.0.1:{port}",
            "btcusdt@aggTrade",
            "--seconds",
            "1.5",
            tmp_path=tmp_path,
        )
    assert r.returncode == 1, r.stderr
    assert "not connected to" in r.stderr and "within --seconds 1.5" in r.stderr
    assert "Traceback" not in r.stderr


def _symbol_lines(text: str, sym: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith(sym)]


def test_demo_live_view_then_ctrl_c_prints_the_summary(tmp_path):
    child = spawn("demo", "--interval", "0.3", tmp_path=tmp_path)
    # The live view: a row per symbol, labelled, with its book's best bid and ask.
    child.expect(r"BTCUSDT +book valid")
    child.expect(r"ETHUSDT +book valid")
    child.expect("msg/s")
    child.sendintr()
    code, out = finish(child)
    assert code == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    view, _, summary = out.rpartition("summary")
    assert "latency p50 <=" in view
    assert "exchange event time E" in out and "5 ms market tick" in out
    for sym in ("BTCUSDT", "ETHUSDT"):
        (line,) = _symbol_lines(summary, "│ " + sym) or _symbol_lines(summary, sym)
        bid, ask = (float(x.replace(",", "")) for x in re.findall(r"(?:bid|ask) ([\d,.]+)", line))
        assert bid < ask and abs(bid / START_PRICE[sym] - 1) < 0.05, line
    for label in ("messages", "latency (recv - E)", "reconnects", "gaps", "memory (RSS)"):
        assert label in summary


def test_json_and_ca_against_a_simulator_process(tmp_path):
    sim = subprocess.Popen(
        [sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT", "--rate", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=str(tmp_path),
    )
    try:
        info = json.loads(sim.stdout.readline())
        url = ["run", "--url", info["ws"], "btcusdt@depth@100ms", "btcusdt@aggTrade"]
        r = run_pipe(
            *url,
            "--ca",
            info["ca"],
            "--rest-url",
            info["rest"],
            "--seconds",
            "3",
            "--json",
            tmp_path=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)  # one JSON document, nothing else on stdout
        assert doc["messages"] == sum(doc["messages_by_kind"].values()) > 0
        assert doc["rows"]["trades"] > 0 and doc["rows"]["depth"] > 0
        lat = doc["latency_us"]
        assert lat["p50"]["low"] < lat["p50"]["high"] <= lat["p99"]["high"]
        assert "exchange event time E" in doc["latency_means"]
        btc = doc["symbols"]["BTCUSDT"]
        assert btc["source"] == "book" and btc["state"] == "valid" and btc["bid"] < btc["ask"]
        assert btc["book"]["snapshots"] >= 1
        # Without --ca the simulator's certificate is refused, and the error says so.
        r = run_pipe(*url, "--seconds", "2", tmp_path=tmp_path)
        assert r.returncode == 1 and "did not verify" in r.stderr and "--ca" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(15)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait()


def test_plain_text_when_stdout_is_not_a_terminal(tmp_path):
    r = run_pipe("demo", "--seconds", "2.5", "--interval", "0.5", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout  # no terminal escapes in a pipe
    assert _symbol_lines(r.stdout, "BTCUSDT") and _symbol_lines(r.stdout, "ETHUSDT")
    assert "\nsummary\n" in r.stdout and "latency (recv - E)" in r.stdout


@pytest.mark.parametrize(
    "argv, code, says",
    [
        (["--help"], 0, "demo"),  # the parser itself needs no extra
        (["demo", "--seconds", "1"], 1, "pip install 'fastfeed[sim]'"),
        (["sim"], 1, "pip install 'fastfeed[sim]'"),
    ],
)
def test_missing_extra_is_named(argv, code, says, tmp_path):
    # A trustme that is not there: what a plain `pip install fastfeed` gives.
    (tmp_path / "trustme.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'trustme'\", name='trustme')\n"
    )
    env = _env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-m", "fastfeed.cli", *argv],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == code, r.stderr
    assert says in r.stdout + r.stderr and "Traceback" not in r.stderr
