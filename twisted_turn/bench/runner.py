# -*- test-case-name: tests.test_bench -*-
"""
The relay-flood benchmark: servers pinned to one CPU, the C generator and echo peer on
another, rounds alternating the variants (A B C ... A B C ...) after a warm-up round, for each
load; the median of the rounds with min and max, and the ratios to the stock port and to
coturn.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted_turn.bench.client import TurnClient, TurnError, openClients
from twisted_turn.bench.load import EchoPeer, Generator
from twisted_turn.bench.servers import (
    VARIANTS,
    Variant,
    ServerFailed,
    ServerProcess,
    cpuSeconds,
    udpDrops,
)
from twisted_turn.bench.stats import RoundResult, formatTable, summarizeVariant

__all__ = ["LOADS", "BenchConfig", "Load", "describeRound", "measureRound", "runBenchmark"]


@dataclass(frozen=True)
class Load:
    """
    The traffic of one benchmark load.

    @ivar clients: TURN clients, each with its own socket, allocation and channel.
    @ivar rate: datagrams per second per client; 0 floods.
    @ivar sizes: payload sizes (after the 4-byte ChannelData header), cycled.
    @ivar inflight: flood only: most datagrams a client has beyond its newest echo; 0 is a
        plain open loop.
    @ivar tick: fixed rate only: the generator's pacing granularity (see L{Generator}).
    @ivar count: most datagrams per client and round; 0 for no limit but the duration.
    """

    name: str
    description: str
    clients: int
    rate: float
    sizes: Tuple[int, ...]
    inflight: int = 0
    tick: float = 0.0
    count: int = 0

    def generator(self, clients: Sequence[TurnClient], duration: float, drain: float,
                  inflight: Optional[int] = None) -> Generator:
        return Generator(
            [c.sock for c in clients],
            [c.channel for c in clients],
            self.sizes,
            rate=self.rate,
            inflight=self.inflight if inflight is None else inflight,
            duration=duration,
            drain=drain,
            tick=self.tick,
            count=self.count,
        )


#: In-flight window of the one-client flood: enough to keep the fastest variant busy (with 128
#: it idled between bursts), and about what a server socket's default buffer (212992 bytes,
#: some 800 bytes of it per small datagram) holds, so a server that stops reading drops a
#: little; the per-round lines count those drops.  The mixed load, with larger datagrams,
#: keeps 32 per client.
FLOOD_INFLIGHT = 256

#: Pacing granularity of the fixed-rate load: the generator wakes at most this often (about
#: 3 datagrams a wakeup at 15,000 a second), so that the load side is not the bottleneck.
PACING_TICK = 0.0002

LOADS: Dict[str, Load] = {
    load.name: load
    for load in [
        Load("flood", "1 client flooding 120-byte payloads", 1, 0.0, (120,), FLOOD_INFLIGHT),
        Load("clients", "100 clients, 150 datagrams/s each, 120-byte payloads", 100, 150.0,
             (120,), tick=PACING_TICK),
        Load("mixed", "4 clients flooding payloads cycling 60..1200 bytes", 4, 0.0,
             (60, 120, 300, 600, 900, 1200), FLOOD_INFLIGHT // 8),
    ]
}


@dataclass
class BenchConfig:
    """
    What to run; L{twisted_turn.bench.__main__} fills it from the command line.

    @ivar serverCpu: the CPU the servers are pinned to; L{None}: no pinning.
    @ivar loadCpu: the CPU of this process (generator and peer).
    @ivar inflight: override the loads' in-flight windows.
    """

    variants: Sequence[str] = tuple(VARIANTS)
    loads: Sequence[str] = tuple(LOADS)
    rounds: int = 3
    duration: float = 5.0
    warmup: float = 1.0
    drain: float = 0.5
    realm: str = "bench"
    user: str = "bench"
    password: str = "secret"
    serverCpu: Optional[int] = 0
    loadCpu: Optional[int] = 1
    inflight: Optional[int] = None
    workdir: Optional[Path] = None
    jsonPath: Optional[Path] = None
    keepLogs: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)
    #: Another checkout, run with the defaults as the variant C{baseline} beside the others.
    baseline: Optional[Path] = None


def _waitSending(generator: Generator, deadlineNs: int) -> None:
    """
    Sleep until C{deadlineNs} (CLOCK_MONOTONIC) or until the generator stops sending.
    """
    while not generator.sendingDone:
        left = (deadlineNs - time.monotonic_ns()) / 1e9
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


def measureRound(
    server: Optional[ServerProcess],
    peer: EchoPeer,
    clients: Sequence[TurnClient],
    load: Load,
    *,
    variant: str,
    round: int,
    duration: float,
    drain: float,
    inflight: Optional[int] = None,
    serverPid: Optional[int] = None,
) -> RoundResult:
    """
    Run one round of C{load} through a server and measure it.

    The window starts after a ramp (a tenth of the duration, at most 0.5 s) and ends just
    before the generator stops sending: the server's CPU time and the datagrams both ends
    received are the differences of samples taken at its edges.  A run that reaches its count
    early is measured whole, from before the start to the end of the drain.

    @param server: the server, for its CPU time; or give C{serverPid}; with neither, the
        server CPU reads as 0.
    """
    for client in clients:
        client.discard()
    pid = server.pid if server is not None else serverPid
    dropsBefore = (udpDrops(pid) if pid is not None else 0, udpDrops(os.getpid()))

    def sample() -> Tuple[int, float, float, int, int]:
        serverCpu = server.cpuSeconds() if server is not None else (
            cpuSeconds(pid) if pid is not None else 0.0)
        return (
            time.monotonic_ns(),
            serverCpu,
            cpuSeconds(os.getpid()),
            peer.counters()["received"],
            generator.counters()["received"],
        )

    generator = load.generator(clients, duration, drain, inflight)
    try:
        before = sample()
        generator.start()
        while generator.startNs == 0 and generator.alive:
            time.sleep(0.001)
        start = generator.startNs
        ramp = min(0.5, duration / 10)
        margin = min(0.05, duration / 50)
        _waitSending(generator, start + int(ramp * 1e9))
        # A run bounded by its count may be over before the ramp: then measure all of it.
        first = before if generator.sendingDone else sample()
        _waitSending(generator, start + int((duration - margin) * 1e9))
        if generator.sendingDone:
            result = generator.wait()
            last = sample()
        else:
            last = sample()
            result = generator.wait()
    except BaseException:
        generator.stop()
        raise
    finally:
        generator.close()
    dropsAfter = (udpDrops(pid) if pid is not None else 0, udpDrops(os.getpid()))
    return RoundResult(
        variant=variant,
        load=load.name,
        round=round,
        window=(last[0] - first[0]) / 1e9,
        uplink=last[3] - first[3],
        downlink=last[4] - first[4],
        serverCpu=last[1] - first[1],
        loadCpu=last[2] - first[2],
        generator=result.asDict(),
        serverDrops=dropsAfter[0] - dropsBefore[0],
        loadDrops=dropsAfter[1] - dropsBefore[1],
    )


def describeRound(result: RoundResult) -> str:
    """
    One line on one round, for the progress output.
    """
    return (
        f"fwd {result.forwardedPerSecond:9.0f}/s  server cpu {result.cpuPerSecond:4.2f}  "
        f"fwd/cpu-s {result.perCpuSecond or 0:9.0f}  loss {result.loss * 100:5.2f} % "
        f"(drops: server {result.serverDrops}, load {result.loadDrops})  "
        f"load cpu {result.loadCpuPerSecond:4.2f}"
    )


class _Setup:
    """
    One variant's clients for one load.
    """

    def __init__(self, server: ServerProcess, clients: List[TurnClient]) -> None:
        self.server = server
        self.clients = clients
        self.refreshed = time.monotonic()

    def refresh(self, every: float = 120.0) -> None:
        # Permissions last 300 s: a long run must refresh them, but not before every round.
        if time.monotonic() - self.refreshed >= every:
            for client in self.clients:
                client.refresh()
            self.refreshed = time.monotonic()

    def close(self) -> None:
        for client in self.clients:
            client.close(deallocate=self.server.alive())


def _pin(cpu: Optional[int]) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def runBenchmark(config: BenchConfig, out: Callable[[str], None] = print) -> Dict[str, Any]:
    """
    Run the benchmark and print its tables as it goes.

    @return: everything measured, as written to C{config.jsonPath}.
    """
    unknown = [v for v in config.variants if v not in VARIANTS]
    unknown += [load for load in config.loads if load not in LOADS]
    if unknown:
        raise ValueError(f"unknown variant or load: {', '.join(unknown)}")
    if config.rounds < 1 or config.duration <= 0:
        raise ValueError("at least one round of a positive duration")
    variants = [VARIANTS[name] for name in config.variants]
    if config.baseline is not None:
        variants.append(baselineVariant(config.baseline))
    loads = [LOADS[name] for name in config.loads]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    serverCpu, loadCpu = config.serverCpu, config.loadCpu
    if serverCpu is not None and (serverCpu not in cpus or loadCpu not in cpus
                                  or serverCpu == loadCpu):
        out(f"warning: CPUs {serverCpu} (servers) and {loadCpu} (load) are not two distinct "
            f"CPUs of {cpus}; nothing is pinned")
        serverCpu = loadCpu = None
    _pin(loadCpu)
    perRound = config.duration + config.drain + 0.3
    estimate = len(loads) * len(variants) * (
        config.warmup + config.drain + 0.3 + config.rounds * perRound)
    out(f"twisted-turn relay benchmark: {len(variants)} variants x {len(loads)} loads, "
        f"{config.rounds} rounds of {config.duration:g} s after a {config.warmup:g} s warm-up; "
        f"about {estimate / 60:.1f} min")
    out(f"servers on CPU {serverCpu}, generator and echo peer on CPU {loadCpu}")

    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="turnbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {
        "config": {
            "variants": list(config.variants), "loads": list(config.loads),
            "rounds": config.rounds, "duration": config.duration, "warmup": config.warmup,
            "drain": config.drain, "serverCpu": serverCpu, "loadCpu": loadCpu,
            "inflight": config.inflight,
        },
        "servers": {},
        "skipped": {},
        "loads": {},
    }
    maxClients = max(load.clients for load in loads)
    peer = EchoPeer().start()
    servers: Dict[str, ServerProcess] = {}
    try:
        for variant in variants:
            try:
                server = ServerProcess(
                    variant, workdir, realm=config.realm, user=config.user,
                    password=config.password, relayPorts=maxClients + 50, cpu=serverCpu,
                )
            except ServerFailed as e:
                out(f"skipping {variant.name}: {e}")
                report["skipped"][variant.name] = str(e)
                continue
            servers[variant.name] = server
            report["servers"][variant.name] = {
                "description": variant.description, "command": server.command,
                "port": server.port, "batching": server.batching,
            }
            out(f"  {variant.name:<10} pid {server.pid}, port {server.port}"
                + (f": {server.batching}" if server.batching else ""))
        for load in loads:
            report["loads"][load.name] = _runLoad(config, load, servers, peer, out, report)
    finally:
        for server in servers.values():
            server.stop()
        peer.stop()
    if config.jsonPath is not None:
        config.jsonPath.write_text(json.dumps(report, indent=2, default=str))
        out(f"wrote {config.jsonPath}")
    out(f"server logs in {workdir}")
    return report


def _runLoad(
    config: BenchConfig,
    load: Load,
    servers: Dict[str, ServerProcess],
    peer: EchoPeer,
    out: Callable[[str], None],
    report: Dict[str, Any],
) -> Dict[str, Any]:
    inflight = config.inflight if config.inflight is not None else load.inflight
    window = f", in-flight window {inflight}" if load.rate == 0 and inflight else ""
    out(f"\nload {load.name}: {load.description}{window}")
    setups: Dict[str, _Setup] = {}
    for name, server in servers.items():
        if not server.alive():
            continue
        try:
            clients = openClients(load.clients, server.port, config.user, config.password,
                                  peer.address)
        except (TurnError, OSError) as e:
            out(f"  skipping {name} for {load.name}: setting up clients failed: {e}")
            report["skipped"][f"{name}/{load.name}"] = str(e)
            continue
        setups[name] = _Setup(server, clients)
    rounds: Dict[str, List[RoundResult]] = {name: [] for name in setups}
    try:
        for number in range(config.rounds + 1):
            duration = config.warmup if number == 0 else config.duration
            if duration <= 0:
                continue
            for name, setup in list(setups.items()):
                try:
                    setup.refresh()
                    result = measureRound(
                        setup.server, peer, setup.clients, load, variant=name, round=number,
                        duration=duration, drain=config.drain, inflight=inflight,
                    )
                except (ServerFailed, TurnError, OSError) as e:
                    out(f"  {name} failed in round {number}: {e}")
                    report["skipped"][f"{name}/{load.name}"] = str(e)
                    setup.close()
                    del setups[name]
                    continue
                label = "warm-up" if number == 0 else f"round {number}"
                out(f"  {label:<8} {name:<10} {describeRound(result)}")
                if number > 0:
                    rounds[name].append(result)
    finally:
        for setup in setups.values():
            setup.close()
    stock, coturn = rounds.get("stock"), rounds.get("coturn")
    summaries = {
        name: summarizeVariant(results, stock, coturn)
        for name, results in rounds.items() if results
    }
    out(f"\n{load.name}: {load.description}{window}; median of {config.rounds} rounds of "
        f"{config.duration:g} s, min-max below")
    out(formatTable(summaries))
    return {
        "description": load.description,
        "clients": load.clients,
        "rate": load.rate,
        "sizes": list(load.sizes),
        "inflight": inflight,
        "rounds": {name: [r.asDict() for r in results] for name, results in rounds.items()},
        "summary": {
            name: {metric: (s.asDict() if s else None) for metric, s in summary.items()}
            for name, summary in summaries.items()
        },
    }


def baselineVariant(root: Path) -> Variant:
    """
    The variant C{baseline}: the defaults, from the checkout at C{root} (its native module
    built in place), to measure a change before and after in one run.

    @raise ValueError: C{root} holds no C{twisted_turn} package.
    """
    root = Path(root).resolve()
    if not (root / "twisted_turn" / "__init__.py").exists():
        raise ValueError(f"--baseline {root}: no twisted_turn package there")
    return Variant("baseline", f"the defaults, from the checkout {root}", packageRoot=root)


def variantsHelp() -> str:
    return "\n".join(f"  {v.name:<10} {v.description}" for v in VARIANTS.values())


def loadsHelp() -> str:
    return "\n".join(f"  {load.name:<10} {load.description}" for load in LOADS.values())
