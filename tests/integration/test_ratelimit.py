# -*- test-case-name: tests.integration.test_ratelimit -*-
"""
The limits on what a real C{twistd turn} answers before integrity is proven (abuse issue,
item 2): a flood of unauthenticated Allocates from one source gets at most the burst plus the
rate answered while a client with good credentials from another address relays without loss;
a flood of wrong passwords for one user is cut off while the user, from its own address, keeps
working; and 100,000 distinct spoofed sources leave the server's memory flat.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.integration.harness import (
    ALLOCATE,
    HOST,
    PASSWORD,
    REQUESTED_TRANSPORT,
    USER,
    RawTurnClient,
    TurnServerProcess,
    assertNoLoss,
    bindingRequest,
    runUclient,
    stunSummary,
)
from tests.integration.netns import runInNetworkNamespace

pytestmark = pytest.mark.integration

#: The flooding source: another loopback address than the real client's 127.0.0.1.
ATTACKER = "127.0.0.2"

#: The defaults: --unauthorized-ratelimit-rps 10, a burst of as many.
RATE = BURST = 10

_MAGIC = 0x2112A442


def allocateRequest() -> bytes:
    """
    An unauthenticated Allocate (REQUESTED-TRANSPORT UDP, 28 bytes).
    """
    return struct.pack("!HHI", ALLOCATE, 8, _MAGIC) + os.urandom(12) + struct.pack(
        "!HHI", REQUESTED_TRANSPORT, 4, 17 << 24
    )


def flood(port: int, count: int, seconds: float, source: str = ATTACKER) -> Dict[str, Any]:
    """
    Send C{count} unauthenticated Allocates from C{source} to the server, evenly over
    C{seconds}, and count what comes back until half a second after the last.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    answers: List[Optional[tuple]] = []
    started = time.monotonic()
    try:
        for sent in range(count):
            sock.sendto(allocateRequest(), (HOST, port))
            due = started + seconds * (sent + 1) / count
            while True:
                try:
                    answers.append(stunSummary(sock.recv(2048)))
                except BlockingIOError:
                    pass
                else:
                    continue
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(min(wait, 0.005))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                answers.append(stunSummary(sock.recv(2048)))
            except BlockingIOError:
                time.sleep(0.01)
    finally:
        sock.close()
    return {"answers": answers, "elapsed": elapsed}


def test_unauthenticatedFloodLimited(turnServer, echoPeer) -> None:
    """
    2000 unauthenticated Allocates in one second from one source get at most the burst plus
    the rate answered (each a 401), while turnutils_uclient with good credentials, from
    another address at the same time, allocates and relays every message.
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")
    results: Dict[str, Any] = {}
    attacker = threading.Thread(
        target=lambda: results.update(flood(server.port, 2000, 1.0)), daemon=True
    )
    attacker.start()
    client = runUclient(
        server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD), messages=100, clients=2,
    )
    attacker.join(timeout=30)
    assertNoLoss(client, 200)
    answers = results["answers"]
    assert answers, "the flood got no answer at all"
    assert set(answers) == {(0x0113, 401)}, answers
    assert len(answers) <= BURST + RATE * results["elapsed"] + 1, (len(answers), results)
    log = server.log()
    assert f"Unauthenticated requests from {ATTACKER} past the rate limit" in log, log


def test_floodAnsweredWithLimitOff(turnServer) -> None:
    """
    With --no-unauthorized-ratelimit every request of the same flood is answered.
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--no-unauthorized-ratelimit")
    results = flood(server.port, 300, 0.3)
    assert len(results["answers"]) == 300, len(results["answers"])


def test_bruteForceCutOff(turnServer, echoPeer) -> None:
    """
    Wrong passwords for one user from one address are answered up to the per-user budget,
    then dropped unanswered; meanwhile the user, from the address it authenticated from,
    keeps relaying.
    """
    server = turnServer(
        "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers",
        "--user-auth-failures-per-minute", "5",
    )
    # The user authenticates from 127.0.0.1 first.
    assertNoLoss(runUclient(server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD),
                            messages=10, clients=1), 10)
    guesser = RawTurnClient(server.port, password="guess", sourceHost=ATTACKER)
    # Each request after the first challenge is one more signed guess; a dropped one is seen
    # as no answer within half a second (the budget refills one guess in 12 s).
    guesser.sock.settimeout(0.5)
    codes = []
    try:
        for _ in range(12):
            try:
                codes.append(guesser.request(ALLOCATE, [(REQUESTED_TRANSPORT, b"\x11\0\0\0")])[1])
            except socket.timeout:
                codes.append("unanswered")
    finally:
        guesser.close()
    assert codes[:5] == [401] * 5, codes
    assert codes[5:] == ["unanswered"] * 7, codes
    assertNoLoss(runUclient(server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD),
                            messages=10, clients=1), 10)
    assert "Too many failed authentications for 'alice'" in server.log()


#: Spoofed sources: all of 10.0.0.0/8 is local in the namespace (an "AnyIP" route), so one
#: socket can send from any of them with IP_PKTINFO. The warm-up fills the batching port's
#: source and destination caches (65,536 entries each) and lets their tables reach the size
#: they keep while full, before the 100,000 sources that are measured.
SPOOFED_WARMUP = 200_000
SPOOFED_SOURCES = 100_000


#: Linux's IP_PKTINFO (linux/in.h), which Python's socket module lacks before 3.12.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def _sendFrom(sock: socket.socket, data: bytes, source: str, destination) -> None:
    """
    Send C{data} with C{source} as its source address (struct in_pktinfo's ipi_spec_dst).
    """
    pktinfo = struct.pack("=I4s4s", 0, socket.inet_aton(source), b"\0" * 4)
    sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, destination)


def _rss(pid: int) -> int:
    """
    The resident set of process C{pid}, in kB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def spoofedFloodScenario(workdir: str, warmup: int, sources: int) -> Dict[str, Any]:
    """
    In a namespace: a server, then unauthenticated Allocates from C{warmup + sources}
    distinct addresses of 10.0.0.0/8, at most 256 unanswered at a time. The first C{warmup}
    bring the server to its steady state (its bounded caches full, their tables at the size
    they keep); the server's RSS is read then and after each tenth of the next C{sources};
    then whether Binding is still answered.
    """
    import subprocess

    subprocess.run(
        ["ip", "route", "add", "local", "10.0.0.0/8", "dev", "lo", "table", "local"],
        check=True, timeout=30,
    )
    server = TurnServerProcess(Path(workdir) / "turn.log", ["--user", f"{USER}:{PASSWORD}"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    destination = (HOST, server.port)
    total = warmup + sources
    if total >= 1 << 24:
        raise AssertionError("too many sources for 10.0.0.0/8")
    rss: List[int] = []
    sent = answered = 0
    try:
        started = time.monotonic()
        while sent < total:
            while sent - answered < 256 and sent < total:
                sent += 1
                host = f"10.{(sent >> 16) & 255}.{(sent >> 8) & 255}.{sent & 255}"
                _sendFrom(sock, allocateRequest(), host, destination)
                if sent >= warmup and (sent - warmup) % (sources // 10) == 0:
                    rss.append(_rss(server.process.pid))
            sock.settimeout(2)
            try:
                sock.recv(2048)
                answered += 1
                sock.settimeout(0)
                while True:
                    sock.recv(2048)
                    answered += 1
            except (socket.timeout, BlockingIOError):
                if sent - answered >= 256:
                    # Lost in a queue: give up on those rather than wait for them.
                    answered = sent - 128
        seconds = time.monotonic() - started
        time.sleep(0.5)
        rss.append(_rss(server.process.pid))
        sock.settimeout(0)
        try:
            while True:
                sock.recv(2048)
        except BlockingIOError:
            pass
        request, transactionId = bindingRequest()
        sock.settimeout(2)
        sock.sendto(request, destination)
        binding = None
        while binding is None:
            data = sock.recv(2048)
            if data[8:20] == transactionId:
                binding = stunSummary(data)
        return {
            "rss": rss, "sent": sent, "answered": answered, "seconds": seconds,
            "binding": list(binding) if binding else None, "log": server.log()[-3000:],
        }
    finally:
        sock.close()
        server.stop()


def test_memoryFlatAcrossSpoofedSources(tmp_path) -> None:
    """
    After a warm-up, 100,000 unauthenticated Allocates, each from another spoofed source, keep
    the server's resident memory within 1 MB of where it stood, and Binding is answered at the
    end: nothing is kept per source, and the caches that are (the batching port's) stay at
    their bound.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_ratelimit:spoofedFloodScenario",
        {"workdir": str(tmp_path), "warmup": SPOOFED_WARMUP, "sources": SPOOFED_SOURCES},
        timeout=300,
    )
    print({key: value for key, value in report.items() if key != "log"})
    total = SPOOFED_WARMUP + SPOOFED_SOURCES
    assert report["sent"] == total
    assert report["answered"] >= total * 0.9, report
    assert report["binding"] == [0x0101, None], report
    rss = report["rss"]
    assert max(rss) - rss[0] < 1024, rss
