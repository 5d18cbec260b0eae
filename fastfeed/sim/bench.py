"""Measure the simulator's blast rate and paced-rate accuracy.

    python -m fastfeed.sim.bench --blast 1000000 --paced 10000 --paced-n 50000

The reader runs in a separate process and only counts bytes after a hand-written upgrade
(no WebSocket parsing), so the number is the server's output rate over TLS, not a client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import subprocess
import sys
import time

from fastfeed._aio import run


async def _reader(url: str, ca: str, path: str, nbytes: int) -> None:
    host, port = url[len("wss://") :].rsplit(":", 1)
    r, w = await asyncio.open_connection(
        host,
        int(port),
        ssl=ssl.create_default_context(cafile=ca),
        server_hostname=host,
        limit=1 << 22,
    )
    w.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await r.readuntil(b"\r\n\r\n")
    print("ready", flush=True)
    got, t0 = 0, None
    while got < nbytes:
        chunk = await r.read(1 << 20)
        if not chunk:
            break
        if t0 is None:
            t0 = time.perf_counter()
        got += len(chunk)
    print(
        json.dumps({"bytes": got, "seconds": time.perf_counter() - (t0 or time.perf_counter())}),
        flush=True,
    )


async def _line(proc: subprocess.Popen[str]) -> str:
    # The reader's next line, read off the event loop (the simulator must keep running).
    out = proc.stdout
    assert out is not None  # started with stdout=PIPE
    return await asyncio.get_running_loop().run_in_executor(None, out.readline)


async def _main(args: argparse.Namespace) -> None:
    from . import ExchangeSimulator

    path = "/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms"
    async with ExchangeSimulator(symbols=["BTCUSDT"], clock="manual", seed=1) as sim:
        if args.blast:
            t = time.perf_counter()
            chunks, nbytes = sim.prepare_blast(args.blast)
            prep = time.perf_counter() - t
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fastfeed.sim.bench",
                    "--reader",
                    sim.ws_url,
                    sim.ca_file,
                    path,
                    str(nbytes),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            await _line(proc)
            await sim.wait_connections(1)
            res = await sim.blast(args.blast, prepared=(chunks, nbytes))
            line = await _line(proc)
            proc.wait()
            rd = json.loads(line)
            print(
                f"blast: {args.blast} msgs, {nbytes / 1e6:.1f} MB, encode {prep:.2f} s; "
                f"server {res.msgs_per_s / 1e6:.2f} M msgs/s ({res.mb_per_s:.0f} MB/s); "
                f"raw TLS reader saw {rd['bytes'] / rd['seconds'] / 1e6:.0f} MB/s"
            )
        if args.paced:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fastfeed.sim.bench",
                    "--reader",
                    sim.ws_url,
                    sim.ca_file,
                    path,
                    str(1 << 62),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            await _line(proc)
            (conn,) = await sim.wait_connections(1)
            paced = await sim.paced(args.paced, args.paced_n, conn)
            proc.kill()
            print(
                f"paced: asked {args.paced:.0f}/s, achieved {paced.achieved_rate:.1f}/s "
                f"({(paced.achieved_rate / args.paced - 1) * 100:+.3f}%) over {paced.messages} "
                f"msgs; send lag vs schedule p50 {paced.lag_p50 * 1e6:.0f} us, "
                f"p99 {paced.lag_p99 * 1e6:.0f} us, max {paced.lag_max * 1e6:.0f} us"
            )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--blast", type=int, default=1_000_000)
    p.add_argument("--paced", type=float, default=10_000)
    p.add_argument("--paced-n", type=int, default=50_000)
    p.add_argument("--reader", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reader:
        url, ca, path, n = args.reader
        run(_reader(url, ca, path, int(n)))
    else:
        run(_main(args))


if __name__ == "__main__":
    main()
