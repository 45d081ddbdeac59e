# -*- test-case-name: tests.test_bench -*-
"""
The servers under test: our C{twistd turn} in its variants and Debian's coturn, each started
on 127.0.0.1 with free ports, pinned to one CPU, and measured through C{/proc}.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Set, Tuple

from twisted_turn.bench.client import LOOPBACK, stunBinding

__all__ = [
    "VARIANTS",
    "ServerFailed",
    "ServerProcess",
    "Variant",
    "cpuSeconds",
    "freeRelayRange",
    "freeUdpPort",
    "parseCpuSeconds",
    "parseUdpDrops",
    "udpDrops",
]

#: The checkout (or site-packages) directory holding the twisted_turn package, put first on the
#: servers' PYTHONPATH so that twistd finds this tree's plugin and package.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

#: twistd under this interpreter (the C{twistd} on PATH may belong to another Python).
TWISTD = (sys.executable, "-c", "from twisted.scripts.twistd import run; run()")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServerFailed(Exception):
    """
    A server did not start, or stopped: the message says why, with the end of its log.
    """


@dataclass(frozen=True)
class Variant:
    """
    One server configuration under test.

    @ivar name: what the options and the table call it.
    @ivar description: one line for the table's legend.
    @ivar coturn: Debian's turnserver rather than ours.
    @ivar environment: extra environment variables.
    @ivar twistdOptions: twistd's own options (before C{turn}).
    @ivar turnOptions: options of C{twistd turn}, after the common ones.
    @ivar packageRoot: the checkout whose C{twisted_turn} runs (L{PACKAGE_ROOT} when
        L{None}): another one measures a baseline side by side (C{run --baseline}).
    """

    name: str
    description: str
    coturn: bool = False
    environment: Dict[str, str] = field(default_factory=dict)
    twistdOptions: Tuple[str, ...] = ()
    turnOptions: Tuple[str, ...] = ()
    packageRoot: Optional[Path] = None


VARIANTS: Dict[str, Variant] = {
    variant.name: variant
    for variant in [
        Variant(
            "stock",
            "twisted-turn on Twisted's stock UDP port (TWISTED_TURN_NATIVE=off)",
            environment={"TWISTED_TURN_NATIVE": "off"},
        ),
        Variant(
            "recvmmsg",
            "batching port, recvmmsg only (--udp-sendmmsg=false --udp-gso=false)",
            turnOptions=("--udp-sendmmsg=false", "--udp-gso=false"),
        ),
        Variant(
            "sendmmsg",
            "recvmmsg + sendmmsg flushes (--udp-gso=false)",
            turnOptions=("--udp-gso=false",),
        ),
        Variant("gso", "recvmmsg + sendmmsg + GSO flushes (the defaults)"),
        Variant(
            "pollscope",
            "the defaults with one batch scope per poll iteration (twistd -r turnepoll)",
            twistdOptions=("-r", "turnepoll"),
        ),
        Variant(
            "maxbps",
            "the defaults with --max-bps 1000000000: a limit no load reaches, so each datagram "
            "pays the bandwidth bucket's cost and nothing is dropped",
            turnOptions=("--max-bps", "1000000000"),
        ),
        Variant(
            "coturn",
            "Debian's coturn (/usr/bin/turnserver), all its relay threads on the server CPU",
            coturn=True,
        ),
    ]
}


def parseCpuSeconds(stat: str, ticks: int = _CLOCK_TICKS) -> float:
    """
    User plus system time from the text of C{/proc/<pid>/stat}; for a process (not a task) the
    kernel sums every thread, live and exited.

    @param ticks: clock ticks per second (C{SC_CLK_TCK}).
    """
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself;
    # fields count again after the last ")": state is field 3, utime 14, stime 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def cpuSeconds(pid: int) -> float:
    """
    @return: the CPU seconds (user + system, all threads) process C{pid} used so far.
    @raise OSError: no such process.
    """
    with open(f"/proc/{pid}/stat") as f:
        return parseCpuSeconds(f.read())


def parseUdpDrops(table: str, inodes: Set[int]) -> int:
    """
    The datagrams the kernel dropped at some UDP sockets (full receive buffers, mostly), from
    the text of C{/proc/net/udp} or C{/proc/net/udp6}.

    @param inodes: the sockets' inode numbers.
    """
    total = 0
    # Rows: "sl: local remote st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops".
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 13 and fields[9].isdigit() and int(fields[9]) in inodes:
            total += int(fields[12])
    return total


def socketInodes(pid: int) -> Set[int]:
    """
    @return: the inode numbers of the sockets process C{pid} has open.
    """
    inodes = set()
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def udpDrops(pid: int) -> int:
    """
    @return: the datagrams dropped so far at the UDP sockets process C{pid} has open now; 0
        when that cannot be read.
    """
    try:
        inodes = socketInodes(pid)
        total = 0
        for table in ("udp", "udp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as f:
                    total += parseUdpDrops(f.read(), inodes)
            except FileNotFoundError:
                pass
        return total
    except OSError:
        return 0


def _udpPortFree(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def freeUdpPort() -> int:
    """
    @return: a UDP port of 127.0.0.1 that is free right now (the kernel's choice).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


_takenRanges: Set[int] = set()


def freeRelayRange(size: int) -> Tuple[int, int]:
    """
    C{(minPort, maxPort)}: C{size} consecutive free UDP ports not handed out before by this
    process, below the kernel's ephemeral range (where the clients' own sockets land).
    """
    low, high = 10000, 32000
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, ephemeral)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(500):
        base = random.randrange(low, high - size, 10)
        if any(base <= taken + 1000 and taken <= base + size for taken in _takenRanges):
            continue
        if all(_udpPortFree(port) for port in range(base, base + size)):
            # Ranges handed out are remembered with a generous size: ranges never overlap.
            _takenRanges.add(base)
            return base, base + size - 1
    raise ServerFailed(f"no {size} consecutive free UDP ports between {low} and {high}")


def _pinning(cpu: Optional[int]) -> Sequence[str]:
    """
    The command prefix that pins a process and all its future threads to C{cpu}.
    """
    if cpu is None:
        return ()
    taskset = shutil.which("taskset")
    if taskset is None:
        return ()
    return (taskset, "-c", str(cpu))


class ServerProcess:
    """
    One server under test, on 127.0.0.1 with its own listening port and relay range.

    @ivar variant: the L{Variant}.
    @ivar port: the listening port.
    @ivar pid: the server's process id.
    @ivar batching: the server's own words on how its UDP runs (our server only).
    """

    def __init__(
        self,
        variant: Variant,
        workdir: Path,
        *,
        realm: str,
        user: str,
        password: str,
        relayPorts: int,
        cpu: Optional[int],
        readyTimeout: float = 30.0,
    ) -> None:
        self.variant = variant
        self.port = freeUdpPort()
        self.minPort, self.maxPort = freeRelayRange(relayPorts)
        self.logPath = workdir / f"{variant.name}.log"
        self.batching: Optional[str] = None
        common = [
            "--listening-ip", LOOPBACK,
            "--listening-port", str(self.port),
            "--relay-ip", LOOPBACK,
            "--min-port", str(self.minPort),
            "--max-port", str(self.maxPort),
            "--realm", realm,
            "--user", f"{user}:{password}",
            "--allow-loopback-peers",
        ]
        environment = dict(os.environ)
        if variant.coturn:
            turnserver = shutil.which("turnserver")
            if turnserver is None:
                raise ServerFailed("turnserver (coturn) is not installed: apt-get install coturn")
            command = [
                turnserver, "-n", *common, "--lt-cred-mech",
                "--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "--no-tcp-relay",
                "--pidfile", str(workdir / "coturn.pid"),
                "--log-file", "stdout", "--simple-log",
            ]
        else:
            command = [
                *TWISTD, "-n", "--pidfile=", *variant.twistdOptions,
                "turn", *common, *variant.turnOptions,
            ]
            root = variant.packageRoot or PACKAGE_ROOT
            path = os.pathsep.join([str(root), *filter(None, [environment.get("PYTHONPATH")])])
            environment.update(PYTHONPATH=path, PYTHONUNBUFFERED="1")
        environment.update(variant.environment)
        self.command = [*_pinning(cpu), *command]
        with open(self.logPath, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        deadline = time.monotonic() + readyTimeout
        while not stunBinding(self.port, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                why = (
                    f"exit status {self.process.returncode}"
                    if self.process.returncode is not None
                    else f"no STUN Binding response within {readyTimeout:g} s"
                )
                raise ServerFailed(f"{variant.name} did not start ({why}):\n{self.logTail()}")
        self.batching = self._batchingLine()

    def _batchingLine(self) -> Optional[str]:
        for line in self.log().splitlines():
            if "UDP runs on" in line:
                return line.split("UDP runs on", 1)[1].strip()
        return None

    def log(self) -> str:
        """
        Everything the server wrote so far.
        """
        try:
            return self.logPath.read_text(errors="replace")
        except OSError:
            return ""

    def logTail(self, lines: int = 15) -> str:
        return "\n".join("    " + line for line in self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpuSeconds(self) -> float:
        """
        @return: the CPU seconds the server used so far, all threads.
        @raise ServerFailed: it is gone.
        """
        try:
            return cpuSeconds(self.pid)
        except OSError:
            raise ServerFailed(f"{self.variant.name} exited:\n{self.logTail()}") from None

    def stop(self) -> None:
        """
        SIGTERM, then SIGKILL if it lingers.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
