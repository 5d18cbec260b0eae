"""Fingerprint of what the decoder makes of the whole corpus: rows (bytes) and counters.

    PYTHONPATH=<a build> python3 tests/corpus_fingerprint.py [CORPUS_DIR] > out.json

Run it with two builds (e.g. a copy of the package made before a change, and the working
tree after) and compare the outputs: a refactoring of the decoder must leave every row
byte-identical and every counter (``stats()``, including ``off_plan``, the plans' coverage)
the same.  Each file is decoded twice, by ``decode_lines`` and by ``decode`` per line.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

RECV_NS = 1_700_000_000_000_000_000


def _rings(dec):
    return {
        "trades": dec.trades,
        "depth": dec.depth,
        "tickers": dec.tickers,
        "partial": dec.partial,
    }


def fingerprint(path: Path) -> dict:
    import fastfeed

    data = path.read_bytes()
    out = {}
    for mode in ("lines", "each"):
        dec = fastfeed.BinanceDecoder(
            trades=1 << 18, depth=1 << 20, tickers=1 << 18, partial=1 << 18
        )
        if mode == "lines":
            dec.decode_lines(data, RECV_NS)
        else:
            for line in data.split(b"\n"):
                if line.strip():
                    dec.decode(line, RECV_NS)
        rows = {}
        for name, ring in _rings(dec).items():
            assert ring.written <= ring.capacity, f"{path.name}: {name} ring wrapped"
            rows[name] = hashlib.sha256(ring.array[: ring.written].tobytes()).hexdigest()
        out[mode] = {"rows": rows, "stats": dec.stats(), "symbols": dec.symbols.names()}
    return out


def main() -> None:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "binance"
    d = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FASTFEED_CORPUS", default))
    files = sorted(d.glob("*.jsonl")) + sorted((d / "sequences").glob("*.jsonl"))
    result = {str(p.relative_to(d)): fingerprint(p) for p in files}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
