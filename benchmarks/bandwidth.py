"""
Does --max-bps hold?  A real C{twistd turn} on 127.0.0.1 with a 1 Mbit/s limit (125,000 bytes a
second per allocation and direction), one client sending 1200-byte ChannelData at 5 Mbit/s
through it to an echo peer for 10 s: the rate that reaches the peer, and the rate of the
echoes that come back (the downlink bucket holds those), against the limit.

Run:  PYTHONPATH=. python benchmarks/bandwidth.py [--limit 125000] [--offered 625000]
                                                   [--seconds 10] [--rounds 3]

Each round prints the offered rate, what the peer received in the measured window (after a
0.5 s ramp, so the first burst is out of it) and over the whole run (the burst in), and the
ratios to the limit. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from twisted_turn.bench.client import openClients
from twisted_turn.bench.load import EchoPeer
from twisted_turn.bench.runner import Load, measureRound
from twisted_turn.bench.servers import ServerProcess, Variant

SIZE = 1200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=125_000, help="--max-bps, bytes/s")
    parser.add_argument("--offered", type=int, default=625_000, help="bytes/s the client sends")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="turn-bandwidth-"))
    variant = Variant(
        "max-bps", f"--max-bps {options.limit}", turnOptions=("--max-bps", str(options.limit))
    )
    server = ServerProcess(variant, workdir, realm="bench", user="bench", password="secret",
                           relayPorts=10, cpu=None)
    peer = EchoPeer().start()
    rate = options.offered / SIZE
    load = Load("shaped", f"1 client at {options.offered} bytes/s", 1, rate, (SIZE,),
                tick=0.0002)
    ratios = []
    try:
        print(f"limit {options.limit} bytes/s per direction; offered {options.offered} "
              f"bytes/s ({rate:.0f} datagrams of {SIZE} bytes a second) for "
              f"{options.seconds} s")
        for number in range(1, options.rounds + 1):
            clients = openClients(1, server.port, "bench", "secret", peer.address)
            try:
                result = measureRound(server, peer, clients, load, variant=variant.name,
                                      round=number, duration=options.seconds, drain=0.5)
            finally:
                for client in clients:
                    client.close()
            generator = result.generator
            offered = generator["sentBytes"] / generator["sendSeconds"]
            window = result.uplink * SIZE / result.window
            echoed = result.downlink * SIZE / result.window
            whole = generator["receivedBytes"] / generator["sendSeconds"]
            ratios.append(window / options.limit)
            print(f"round {number}: offered {offered:9.0f} B/s; to the peer {window:9.0f} B/s "
                  f"({window / options.limit:.3f}x the limit) in {result.window:.1f} s; "
                  f"echoes back {echoed:9.0f} B/s; over the whole run, burst included, "
                  f"{whole:9.0f} B/s ({whole / options.limit:.3f}x)")
        print(f"median ratio to the limit: {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    finally:
        peer.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
