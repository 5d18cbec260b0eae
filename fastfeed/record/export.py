"""Rows out to research tools: pyarrow tables, Parquet files, pandas and polars frames.

Times become timestamp columns (UTC): ``recv_ns`` in nanoseconds, the exchange's times
(``event_time``, ``trade_time``, ``transact_time``) in the feed's unit (ms, or us with
``time_unit="us"``), -1 (absent) as null.  ``symbol`` becomes a dictionary column whose
values are the symbol names (the ids are its indices, so no string is built per row).

Ring rows are row-major structs, so each column is gathered once (one strided copy per
column); the symbol names and the dictionary indices are shared, not copied per row.
pyarrow, pandas and polars are optional (``pip install 'fastfeed[export]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

TIME_FIELDS = ("event_time", "trade_time", "transact_time")
TABLES = ("trades", "depth", "tickers", "partial", "events")


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError as e:
        raise ImportError("exports need pyarrow: pip install 'fastfeed[export]'") from e
    return pyarrow


def _names(symbols: Any) -> list[str]:
    if symbols is None:
        return []
    if hasattr(symbols, "symbols"):  # a BinanceDecoder
        symbols = symbols.symbols
    if hasattr(symbols, "names"):  # a SymbolTable
        return symbols.names()
    return list(symbols)


def to_arrow(rows: np.ndarray, symbols: Any = None, time_unit: str = "ms") -> Any:
    """A ``pyarrow.Table`` of structured ``rows`` (a ring read, ``ring.tail(n)``, ...).

    ``symbols``: the decoder (or a list of names indexed by id) for a dictionary ``symbol``
    column; None keeps the ids.  ``time_unit``: the unit of the exchange's times."""
    pa = _pa()
    names = _names(symbols)
    cols, fields = [], []
    assert rows.dtype.names is not None, "rows are a structured array (a ring's dtype)"
    for f in rows.dtype.names:
        a = np.ascontiguousarray(rows[f])
        if f == "recv_ns":
            arr = pa.array(a, type=pa.timestamp("ns", tz="UTC"))
        elif f in TIME_FIELDS:
            arr = pa.array(a, mask=a < 0, type=pa.timestamp(time_unit, tz="UTC"))
        elif f == "symbol" and names:
            idx = pa.array(a.astype(np.int32, copy=False))
            arr = pa.DictionaryArray.from_arrays(idx, pa.array(names, pa.string()))
        else:
            arr = pa.array(a)
        cols.append(arr)
        fields.append(f)
    return pa.table(cols, names=fields)


def to_parquet(
    rows: np.ndarray, path: str | os.PathLike, symbols: Any = None, time_unit: str = "ms"
) -> None:
    """Write ``rows`` to a Parquet file (zstd-compressed columns)."""
    import pyarrow.parquet as pq

    pq.write_table(to_arrow(rows, symbols, time_unit), str(path), compression="zstd")


def to_pandas(rows: np.ndarray, symbols: Any = None, time_unit: str = "ms") -> Any:
    """A pandas DataFrame (datetime64 columns, a categorical ``symbol``)."""
    return to_arrow(rows, symbols, time_unit).to_pandas()


def to_polars(rows: np.ndarray, symbols: Any = None, time_unit: str = "ms") -> Any:
    """A polars DataFrame (Datetime columns, a categorical ``symbol``)."""
    try:
        import polars as pl
    except ImportError as e:
        raise ImportError("to_polars needs polars: pip install 'fastfeed[export]'") from e
    return pl.from_arrow(to_arrow(rows, symbols, time_unit))


def export_recording(
    path: str | os.PathLike, out: str | os.PathLike, *, to: str = "parquet", batch: int = 1024
) -> dict:
    """Replay ``path`` as fast as possible and write every ring's rows to ``out/<ring>.parquet``
    (``to="parquet"``; ``"csv"`` for CSV).  Returns rows written per table."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from fastfeed.record.replay import Replay

    if to not in ("parquet", "csv"):
        raise ValueError("to must be 'parquet' or 'csv'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rp = Replay(path, batch=batch)
    readers = {t: getattr(rp, t).reader("oldest") for t in TABLES}
    writers: dict = {}
    counts: dict[str, Any] = dict.fromkeys(TABLES, 0)

    def drain() -> None:
        for t, rd in readers.items():
            rows = rd.read()
            if rd.lost:
                raise RuntimeError(f"export lost {rd.lost} {t} rows: use a smaller batch")
            if not len(rows):
                continue
            tab = to_arrow(rows, rp.decoder, rp.time_unit)
            if to == "csv" and "symbol" in tab.column_names:  # CSV has no dictionaries
                i = tab.column_names.index("symbol")
                tab = tab.set_column(i, "symbol", tab.column("symbol").cast(_pa().string()))
            w = writers.get(t)
            if w is None:
                target = out / f"{t}.{to}"
                w = writers[t] = (
                    pq.ParquetWriter(str(target), tab.schema, compression="zstd")
                    if to == "parquet"
                    else pcsv.CSVWriter(str(target), tab.schema)
                )
            w.write_table(tab)
            counts[t] += len(rows)

    try:
        for _ in rp._steps(batch):
            drain()
        drain()
    finally:
        for w in writers.values():
            w.close()
    counts["errors"] = [str(e) for e in rp.recording.errors]
    return counts
