# -*- test-case-name: tests.test_bench -*-
"""
C{python -m twisted_turn.bench}: the relay benchmark (C{run}), one load against a server that
is already running (C{load}), a standalone echo peer (C{peer}), and the list of variants and
loads (C{list}).  docs/benchmark.md explains the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from twisted_turn.bench.client import LOOPBACK, TurnError, openClients
from twisted_turn.bench.load import MAX_PAYLOAD, PAYLOAD_HEADER, EchoPeer
from twisted_turn.bench.runner import (
    LOADS,
    BenchConfig,
    Load,
    describeRound,
    loadsHelp,
    measureRound,
    runBenchmark,
    variantsHelp,
)
from twisted_turn.bench.servers import VARIANTS
from twisted_turn.bench.stats import formatTable, summarizeVariant

__all__ = ["main"]


def _names(known: Sequence[str], what: str):
    def parse(text: str) -> List[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        wrong = [n for n in names if n not in known]
        if wrong or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(wrong) or '(none)'}; choose from {', '.join(known)}"
            )
        return names

    return parse


def _sizes(text: str) -> List[int]:
    try:
        sizes = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes")
    if not sizes or not all(PAYLOAD_HEADER <= s <= MAX_PAYLOAD for s in sizes):
        raise argparse.ArgumentTypeError(
            f"payload sizes are {PAYLOAD_HEADER} to {MAX_PAYLOAD} bytes"
        )
    return sizes


def _cpu(text: str) -> Optional[int]:
    if text.lower() in ("none", "no", "-"):
        return None
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twisted_turn.bench",
        description="Relay benchmark of twisted-turn against its own variants and coturn, "
        "on 127.0.0.1 only. See docs/benchmark.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="start the servers and run every load through every variant",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start each variant's server on 127.0.0.1 pinned to --server-cpu, then for "
        "each load: set up the TURN clients, run a warm-up round, then --rounds rounds "
        "alternating the variants, and print the median (min-max) of each metric.",
        epilog=f"variants:\n{variantsHelp()}\n\nloads:\n{loadsHelp()}",
    )
    run.add_argument("--variants", type=_names(list(VARIANTS), "variant"),
                     default=list(VARIANTS), help="comma-separated (default: all)")
    run.add_argument("--loads", type=_names(list(LOADS), "load"), default=list(LOADS),
                     help="comma-separated (default: all)")
    run.add_argument("--rounds", type=int, default=3, help="measured rounds (default: 3)")
    run.add_argument("--duration", type=float, default=5.0,
                     help="seconds each round sends (default: 5)")
    run.add_argument("--warmup", type=float, default=1.0,
                     help="seconds of the warm-up round, 0 for none (default: 1)")
    run.add_argument("--drain", type=float, default=0.5,
                     help="seconds to wait for late echoes after each round (default: 0.5)")
    run.add_argument("--inflight", type=int, default=None,
                     help="in-flight window per client of the flood loads (flood, mixed), 0 "
                     "for a plain open loop (default: 256 for flood, 32 for mixed)")
    run.add_argument("--server-cpu", type=_cpu, default=0,
                     help="CPU for the servers, 'none' to pin nothing (default: 0)")
    run.add_argument("--load-cpu", type=_cpu, default=1,
                     help="CPU for the generator and the echo peer (default: 1)")
    run.add_argument("--json", type=Path, default=None, help="also write every number here")
    run.add_argument("--workdir", type=Path, default=None,
                     help="directory for the server logs (default: a new temporary one)")
    run.add_argument("--baseline", type=Path, default=None,
                     help="another checkout (its native module built in place), run with the "
                     "defaults as the variant 'baseline' beside the others: a change's before "
                     "and after in one run")

    load = commands.add_parser(
        "load",
        help="run one load against a TURN server already listening on 127.0.0.1",
        description="Set up clients on a running server, run one load through it to an echo "
        "peer of our own, and print what came back.",
    )
    load.add_argument("--port", type=int, required=True, help="the server's UDP port")
    load.add_argument("--user", default="bench")
    load.add_argument("--password", default="secret")
    load.add_argument("--clients", type=int, default=1)
    load.add_argument("--rate", type=float, default=0.0,
                      help="datagrams per second per client; 0 floods (default)")
    load.add_argument("--sizes", type=_sizes, default=[120],
                      help="payload sizes, comma-separated, cycled (default: 120)")
    load.add_argument("--inflight", type=int, default=256,
                      help="flood: datagrams beyond the newest echo per client, 0 for an "
                      "open loop (default: 256)")
    load.add_argument("--tick", type=float, default=0.0002,
                      help="with --rate: seconds between the generator's wakeups at least, "
                      "0 to wake for every send and echo (default: 0.0002)")
    load.add_argument("--count", type=int, default=0,
                      help="most datagrams per client and round, 0 for no limit (default)")
    load.add_argument("--duration", type=float, default=5.0)
    load.add_argument("--drain", type=float, default=0.5)
    load.add_argument("--server-pid", type=int, default=None,
                      help="the server's process id, to measure its CPU time")
    load.add_argument("--rounds", type=int, default=1)
    load.add_argument("--json", type=Path, default=None)

    peer = commands.add_parser("peer", help="run the C echo peer on 127.0.0.1 until interrupted")
    peer.add_argument("--port", type=int, default=0, help="UDP port (default: any free one)")
    peer.add_argument("--duration", type=float, default=0,
                      help="seconds to run, 0 until interrupted (default)")

    commands.add_parser("list", help="list the variants and loads")
    return parser


def _run(args: argparse.Namespace) -> int:
    config = BenchConfig(
        variants=args.variants, loads=args.loads, rounds=args.rounds, duration=args.duration,
        warmup=args.warmup, drain=args.drain, serverCpu=args.server_cpu,
        loadCpu=args.load_cpu, inflight=args.inflight, workdir=args.workdir,
        jsonPath=args.json, baseline=args.baseline,
    )
    try:
        runBenchmark(config)
    except ValueError as e:
        print(f"twisted_turn.bench: {e}", file=sys.stderr)
        return 2
    return 0


def _load(args: argparse.Namespace) -> int:
    load = Load("custom", f"{args.clients} clients, rate {args.rate or 'flood'}, sizes "
                f"{args.sizes}", args.clients, args.rate, tuple(args.sizes), args.inflight,
                args.tick if args.rate else 0.0, args.count)
    peer = EchoPeer().start()
    try:
        clients = openClients(args.clients, args.port, args.user, args.password, peer.address)
    except (TurnError, OSError) as e:
        peer.stop()
        print(f"setting up clients on {LOOPBACK}:{args.port} failed: {e}", file=sys.stderr)
        return 1
    results = []
    try:
        for number in range(1, args.rounds + 1):
            result = measureRound(None, peer, clients, load, variant="server", round=number,
                                  duration=args.duration, drain=args.drain,
                                  serverPid=args.server_pid)
            results.append(result)
            print(f"round {number}: {describeRound(result)}", flush=True)
    finally:
        for client in clients:
            client.close()
        peer.stop()
    print(formatTable({"server": summarizeVariant(results)}))
    if args.json is not None:
        args.json.write_text(json.dumps([r.asDict() for r in results], indent=2))
    return 0


def _peer(args: argparse.Namespace) -> int:
    peer = EchoPeer(args.port).start()
    print(f"echo peer on {LOOPBACK}:{peer.port}", flush=True)
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        counters = peer.counters()
        peer.stop()
    print(json.dumps(counters))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        print(f"variants:\n{variantsHelp()}\n\nloads:\n{loadsHelp()}")
        return 0
    try:
        return {"run": _run, "load": _load, "peer": _peer}[args.command](args)
    except (RuntimeError, ValueError) as e:
        print(f"{os.path.basename(sys.argv[0])}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
