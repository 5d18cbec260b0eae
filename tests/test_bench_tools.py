"""The soak's pass/fail rule and the benchmark suite's report and charts, on made-up
figures (the runs themselves take minutes to hours: benchmarks/soak.py, benchmarks/suite.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import soak  # noqa: E402


def reading(rss, fds=20, tasks=5, blocks=230_000):
    return {"rss_mb": rss, "fds": fds, "tasks": tasks, "blocks": blocks}


def test_soak_passes_flat_resources():
    s = {"base": reading(95.0), "end": reading(96.9, blocks=231_000)}
    assert soak.check(s, 2.0, 5_000) == []


@pytest.mark.parametrize(
    "end, cause",
    [
        (reading(97.1), "RSS grew"),
        (reading(95.0, fds=21), "file descriptors"),
        (reading(95.0, tasks=6), "asyncio tasks"),
        (reading(95.0, blocks=260_000), "Python blocks"),
    ],
)
def test_soak_fails_on_any_growth_with_its_cause(end, cause):
    fails = soak.check({"base": reading(95.0), "end": end}, 2.0, 5_000)
    assert len(fails) == 1 and cause in fails[0], fails


REPORT = {
    "date": "2026-01-01 00:00 UTC",
    "command": "fastfeed bench",
    "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 24, "os": "Linux", "python": "3.11"},
    "results": {
        "decode": {
            "cases": [
                {
                    "case": "aggTrade",
                    "fastfeed C-level": 70,
                    "orjson.loads": 560,
                    "json.loads": 2600,
                }
            ]
        },
        "book": {
            "workloads": [
                {
                    "name": "sim",
                    "events": 10,
                    "levels": 80,
                    "contenders": {"fastfeed": {"ns_per_level": 50}, "py": {"ns_per_level": 2400}},
                }
            ]
        },
        "e2e": {
            "n": 1000,
            "repeat": 1,
            "blast": {
                "fastfeed": {"cpu_ns_per_msg": 400},
                "picows + orjson": {"cpu_ns_per_msg": 3000},
            },
        },
        "paced": {"by_rate": {"1000": {"fastfeed": {"p50_us": 50, "p99_us": 90, "p99.9_us": 200}}}},
        "replay": {"skipped": "no recorder"},
    },
}


def test_suite_redraws_every_chart_from_a_report(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "results.json"
    out.write_text(json.dumps(REPORT))
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--redraw", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    for name in ("cpu_per_message.png", "latency.png", "decode_ratio.png", "book_per_level.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_suite_names_an_unknown_step():
    pytest.importorskip("matplotlib")
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--only", "decoed"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and "decoed" in p.stderr


def test_bench_subcommand_passes_every_argument_to_the_suite(monkeypatch):
    import argparse

    from fastfeed.bench import add_bench_parser, find_suite

    p = argparse.ArgumentParser(prog="fastfeed")
    add_bench_parser(p.add_subparsers(dest="command"))
    args = ["--quick", "--only", "decode", "-h"]
    assert p.parse_args(["bench", *args]).args == args
    # From a checkout (the package beside benchmarks/, or the working directory): an installed
    # wheel carries no benchmarks, so the command looks in the working directory too.
    monkeypatch.chdir(ROOT)
    assert find_suite() == ROOT / "benchmarks" / "suite.py"
    monkeypatch.chdir(ROOT / "tests")
    found = find_suite()
    assert found is None or found == ROOT / "benchmarks" / "suite.py"  # None from a wheel
