"""The cost of waking an ``async for`` consumer: from the end of a read to the strategy's code.

    PYTHONPATH=. python3 benchmarks/bench_wake.py [--n 20000] [--rounds 5]

A callback on the event loop decodes one aggTrade into a feed's sink and ends the "read"
(``sink.flush()``, what the listener does after a socket read); the time from just before that
call to the first line of the consumer after its ``await`` is the hop.  Modes, interleaved in
rounds (medians of the per-round medians, ns):

* ``event``: the wake fastfeed had before decision 0213, an ``asyncio.Event`` set by a hook,
  ``await event.wait(); event.clear()``;
* ``waiter``: ``feed.wait()`` now, a future resolved in C after the hooks;
* ``hook``: a synchronous hook (no hop; the floor).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

PAYLOAD = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":%d,'
    b'"p":"9.5","q":"2","f":1,"l":1,"T":1,"m":true}}'
)


async def one_round(mode: str, n: int) -> float:
    from fastfeed import BinanceDecoder
    from fastfeed.feed._filter import FeedSink

    loop = asyncio.get_running_loop()
    dec = BinanceDecoder(trades=1 << 12)
    sink = FeedSink(dec)
    conn = BinanceDecoder(share=dec)
    payloads = [PAYLOAD % i for i in range(1, n + 2)]
    t0 = [0]
    lat: list[int] = []
    clock = time.perf_counter_ns

    def read(i: int) -> None:
        sink.decode(conn, payloads[i])
        t0[0] = clock()
        sink.flush()

    if mode == "hook":
        sink.add_hook(lambda: lat.append(clock() - t0[0]))
        for i in range(n):
            read(i)
            await asyncio.sleep(0)
    elif mode == "event":
        ev = asyncio.Event()
        sink.add_hook(ev.set)
        for i in range(n):
            loop.call_soon(read, i)
            await ev.wait()
            ev.clear()
            lat.append(clock() - t0[0])
    else:
        for i in range(n):
            loop.call_soon(read, i)
            fut = sink.waiter(loop)
            if fut is not None:
                await fut
            lat.append(clock() - t0[0])
    return statistics.median(lat[n // 10 :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="wakes per round")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    from fastfeed import run

    modes = ["event", "waiter", "hook"]
    res: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(a.rounds):
        for m in modes[r % 3 :] + modes[: r % 3]:
            res[m].append(run(one_round(m, a.n)))
    for m in modes:
        print(f"{m:8s} hop median {statistics.median(res[m]):7.0f} ns  rounds {res[m]}")


if __name__ == "__main__":
    main()
