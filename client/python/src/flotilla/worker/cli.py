"""``flotilla-worker``: run an app's tasks (docs/PYTHON.md).

    flotilla-worker -A tasks -c 8 -Q default,other [--pool processes] [--nodes h:p,h:p]

SIGTERM (or Ctrl-C) drains: no new tasks, running ones finish and are answered, exit 0. A
second signal exits at once (1); the node releases what the worker held, so nothing is lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType
from typing import Optional

from flotilla.worker.pools import load_app
from flotilla.worker.runner import Worker


def prefetch(value: str) -> Optional[int]:
    """``auto`` (None) or a count of tasks, 0 or more."""
    if value == "auto":
        return None
    n = int(value)
    if n < 0:
        raise ValueError(value)
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flotilla-worker", description=__doc__.split("\n")[0])
    p.add_argument("-A", "--app", required=True, help="module[:attr] of the Flotilla app")
    p.add_argument("-c", "--concurrency", type=int, default=8, help="tasks run at once (8)")
    p.add_argument(
        "--prefetch",
        type=prefetch,
        default=None,
        help="auto (default: the node leases ahead by its rule, none for long tasks, and sends "
        "those tasks here to wait for a free slot), or a fixed number of tasks held here beyond "
        "-c whatever their length (0: none)",
    )
    p.add_argument("-Q", "--queues", help="queues in order of preference (default: the tasks')")
    p.add_argument("--pool", choices=("threads", "processes"), default="threads")
    p.add_argument("--nodes", help="host:port[,host:port] (default: the app's)")
    p.add_argument("-n", "--name", help="worker name, unique in the cluster")
    p.add_argument("-l", "--loglevel", default="info")
    return p


def main(argv: Optional[list[str]] = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.loglevel.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # `-A tasks` imports from the current directory, as Celery's does.
    sys.path.insert(0, os.getcwd())
    try:
        app = load_app(args.app)
        worker = Worker(
            app,
            nodes=args.nodes,
            queues=[q for q in args.queues.split(",") if q] if args.queues else None,
            concurrency=args.concurrency,
            prefetch=args.prefetch,
            pool=args.pool,
            app_ref=args.app,
            name=args.name,
        )
    except (ImportError, LookupError, TypeError, ValueError) as e:
        print(f"flotilla-worker: {e}", file=sys.stderr)
        sys.exit(2)

    signals = 0

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("flotilla.worker").info("signal %d: draining", signum)
            worker.drain()
        else:
            worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = worker.run()
    logging.shutdown()
    # Handlers abandoned by the node may still run in pool threads: do not wait for them.
    os._exit(code)


if __name__ == "__main__":
    main()
