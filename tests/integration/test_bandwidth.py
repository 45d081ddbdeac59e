# -*- test-case-name: tests.integration.test_bandwidth -*-
"""
Bandwidth limits (abuse issue, item 3) on a real C{twistd turn}: --max-bps cuts a burst of
ChannelData down to about its bucket, both ways, and SIGHUP applies a new --max-bps from the
config file to the live allocation. (Whether the limit holds its rate over time is measured
by C{benchmarks/bandwidth.py}, not asserted here.)
"""

from __future__ import annotations

import signal
import socket
import time
from typing import List

import pytest

from tests.integration.harness import PASSWORD, USER, RawTurnClient

pytestmark = pytest.mark.integration

LIMIT = 20_000
COUNT = 200
SIZE = 1000


def _received(sock: socket.socket, wait: float = 1.0) -> List[bytes]:
    datagrams = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            datagrams.append(sock.recv(65535))
        except BlockingIOError:
            time.sleep(0.01)
    return datagrams


def _roomFor(sock: socket.socket, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, size)  # SO_RCVBUFFORCE, as root
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def test_maxBpsCutsBurstAndReloads(turnServer, tmp_path) -> None:
    """
    With --max-bps 20000 (a bucket of 5000 bytes), 200 KB of ChannelData sent at once reach
    the peer only as about the bucket's worth; the peer's 200 KB back reach the client the
    same way. After the config file says max-bps=0 and the server gets SIGHUP, everything
    passes, on the same allocation.
    """
    config = tmp_path / "turnserver.conf"
    config.write_text(f"max-bps={LIMIT}\n")
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers",
                        "-c", str(config))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    client = RawTurnClient(server.port)
    # Room for the whole burst at both ends, so what is missing was the server's doing.
    for sock in (peer, client.sock):
        _roomFor(sock, 4 * COUNT * SIZE)
    try:
        [relayed] = client.allocate()
        assert client.channelBind(0x4000, peer.getsockname()) is None
        payload = b"x" * SIZE

        def burstBothWays() -> tuple:
            for _ in range(COUNT):
                client.channelData(0x4000, payload)
            up = sum(map(len, _received(peer)))
            for _ in range(COUNT):
                peer.sendto(payload, relayed)
            client.sock.setblocking(False)
            try:
                down = sum(len(data) - 4 for data in _received(client.sock) if data[0] == 0x40)
            finally:
                client.sock.setblocking(True)
                client.sock.settimeout(5)
            return up, down

        up, down = burstBothWays()
        bucket = LIMIT // 4
        for relayedBytes in (up, down):
            assert 0 < relayedBytes <= bucket + 3 * SIZE, (up, down)

        config.write_text("max-bps=0\n")
        server.process.send_signal(signal.SIGHUP)
        server.waitForLog("Bandwidth limits now --max-bps 0")
        up, down = burstBothWays()
        assert (up, down) == (COUNT * SIZE, COUNT * SIZE), (up, down)
    finally:
        client.close()
        peer.close()
