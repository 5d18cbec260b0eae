"""Command-line glue for the bus: the options a feed command adds to publish to NATS, and the
publisher they start.  ``fastfeed serve`` calls :func:`add_arguments` on its parser and
``await start_publisher(feed, args)`` once its feed exists."""

from __future__ import annotations

import argparse
from typing import Any

from fastfeed.bus.publisher import ALL_RINGS, Publisher, check_url


def _url(s: str) -> str:
    try:
        check_url(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--nats URL`` and the publisher's options (all off unless ``--nats`` is given)."""
    g = parser.add_argument_group("NATS bus (needs the 'bus' extra: pip install 'fastfeed[bus]')")
    g.add_argument(
        "--nats",
        type=_url,
        default=None,
        metavar="URL",
        help="publish the rows to NATS JetStream at URL (nats://host:4222; "
        "several: comma-separated)",
    )
    g.add_argument(
        "--nats-subject-prefix",
        default="fastfeed",
        metavar="PREFIX",
        help="subjects are PREFIX.<market>.<ring>.<SYMBOL>",
    )
    g.add_argument(
        "--nats-stream",
        default=None,
        metavar="NAME",
        help="JetStream stream name (default: PREFIX_MARKET in capitals)",
    )
    g.add_argument(
        "--nats-max-mb",
        type=float,
        default=1024.0,
        metavar="MB",
        help="history kept by the stream, in MiB",
    )
    g.add_argument(
        "--nats-max-age",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="history kept by the stream, in seconds",
    )
    g.add_argument(
        "--nats-replicas",
        type=int,
        default=1,
        metavar="N",
        help="stream replicas (3 on a 3-node cluster)",
    )
    g.add_argument(
        "--nats-rings",
        default=",".join(ALL_RINGS),
        metavar="RINGS",
        help="comma-separated rings to publish",
    )


async def start_publisher(feed: Any, args: argparse.Namespace) -> Publisher | None:
    """A started :class:`Publisher` on ``feed`` when ``args.nats`` is set, else None.  It does
    not wait for the server: a bus that is down costs dropped batches, never the feed."""
    if not getattr(args, "nats", None):
        return None
    from fastfeed.cli import UsageError, require

    require("nats", "bus", "--nats")
    try:
        pub = Publisher(
            feed,
            args.nats,
            prefix=args.nats_subject_prefix,
            stream=args.nats_stream,
            max_bytes=max(1, int(args.nats_max_mb * (1 << 20))),
            max_age=args.nats_max_age,
            replicas=args.nats_replicas,
            rings=tuple(r.strip() for r in args.nats_rings.split(",") if r.strip()),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    await pub.start()
    return pub
