# -*- test-case-name: tests.integration.test_socketbuffers -*-
"""
Socket buffers that hold a burst (abuse issue, item 4), on a real C{twistd turn}: a burst of
5000 Allocates sent at once from 500 sockets is answered in full with the default
--sock-buf-size, and with a buffer too small for it the kernel's drops are counted in the UDP
summary (the last one is logged when the server stops).
"""

from __future__ import annotations

import re
import socket
import time
from typing import List, Tuple

import pytest

from tests.integration.harness import HOST, PASSWORD, USER, stunSummary
from tests.integration.test_ratelimit import allocateRequest

pytestmark = pytest.mark.integration

SOCKETS = 500
PER_SOCKET = 10


def burst(port: int) -> Tuple[int, List[tuple]]:
    """
    From C{SOCKETS} sockets, each on its own loopback address (so the per-source 401 limit of
    10 answers at once lets all of theirs through), send C{PER_SOCKET} unauthenticated
    Allocates each, as fast as one loop can, then collect the answers for three seconds.

    @return: how many were sent, and the STUN summaries of the answers.
    """
    sockets = []
    try:
        for index in range(SOCKETS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.{2 + index // 250}.{1 + index % 250}", 0))
            sock.setblocking(False)
            sockets.append(sock)
        requests = [allocateRequest() for _ in range(SOCKETS * PER_SOCKET)]
        sent = 0
        for round in range(PER_SOCKET):
            for index, sock in enumerate(sockets):
                sock.sendto(requests[sent], (HOST, port))
                sent += 1
        answers: List[tuple] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(answers) < sent:
            progress = False
            for sock in sockets:
                try:
                    while True:
                        answers.append(stunSummary(sock.recv(2048)))
                        progress = True
                except BlockingIOError:
                    pass
            if not progress:
                time.sleep(0.02)
        return sent, answers
    finally:
        for sock in sockets:
            sock.close()


def finalDrops(server) -> int:
    """
    Stop the server and read dropKernelQueue from the UDP summary it logs on the way out (0
    when the summary names no such drops).
    """
    server.stop()
    summaries = re.findall(r"UDP: .* drops (.*)", server.log())
    assert summaries, server.log()
    match = re.search(r"dropKernelQueue:(\d+)", summaries[-1])
    return int(match.group(1)) if match else 0


def test_burstAnsweredWithDefaultBuffers(turnServer) -> None:
    """
    With the default --sock-buf-size (2 MiB, coturn's), every one of 5000 Allocates sent at
    once from 500 sockets gets its 401, the buffers in force are logged, and the kernel
    dropped nothing.
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}")
    sent, answers = burst(server.port)
    assert sent == SOCKETS * PER_SOCKET
    assert len(answers) == sent, (len(answers), sent)
    assert set(answers) == {(0x0113, 401)}
    assert "UDP socket buffers: 2097152 bytes to receive, 2097152 to send" in server.log()
    assert finalDrops(server) == 0


def test_kernelDropsCounted(turnServer) -> None:
    """
    With a receive buffer far too small for the burst, the kernel drops part of it, and the
    UDP summary counts exactly what did not arrive (dropKernelQueue), where it used to say
    "drops none".
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--sock-buf-size", "4096")
    sent, answers = burst(server.port)
    assert 0 < len(answers) < sent, (len(answers), sent)
    assert finalDrops(server) == sent - len(answers)
