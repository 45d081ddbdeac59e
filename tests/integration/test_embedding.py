"""
The embedding example of docs/embedding.md, run for real: a Twisted application that serves TURN
REST credentials over HTTP and relays in the same process, used by coturn's turnutils_uclient
with credentials fetched from it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.integration.harness import (
    HOST,
    READY_TIMEOUT,
    REPO_ROOT,
    TWISTD,
    checkoutEnvironment,
    freeRelayRange,
    freeListeningPort,
    runUclient,
    stopProcess,
    waitForStun,
)

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "docs" / "examples" / "turn_with_credentials.tac"


def freeTcpPort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def fetchJson(url: str, timeout: float = READY_TIMEOUT) -> dict:
    """
    GET a JSON document, retrying until the server listens or C{timeout} passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def embeddedApplication(tmp_path):
    turnPort, httpPort = freeListeningPort(), freeTcpPort()
    minPort, maxPort = freeRelayRange()
    env = checkoutEnvironment(
        TURN_SECRET="embedded-secret",
        TURN_PORT=str(turnPort),
        TURN_MIN_PORT=str(minPort),
        TURN_MAX_PORT=str(maxPort),
        TURN_ALLOW_LOOPBACK_PEERS="1",
        HTTP_PORT=str(httpPort),
    )
    logPath = tmp_path / "embedded.log"
    with open(logPath, "wb") as log:
        process = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", "-y", str(EXAMPLE)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert waitForStun(turnPort, isAlive=lambda: process.poll() is None), logPath.read_text()
        yield turnPort, httpPort
    finally:
        stopProcess(process)
        print(logPath.read_text(errors="replace"))


def test_credentialsFromTheApplicationRelay(embeddedApplication, echoPeer):
    """
    Credentials handed out by the application's HTTP resource let turnutils_uclient relay
    through the TURN service running in the same process, with no loss; a tampered password
    relays nothing.
    """
    turnPort, httpPort = embeddedApplication
    answer = fetchJson(f"http://{HOST}:{httpPort}/?user=alice")
    assert answer["uris"] == [
        f"turn:{HOST}:{turnPort}?transport=udp",
        f"turn:{HOST}:{turnPort}?transport=tcp",
    ]
    assert answer["username"].endswith(":alice")
    assert int(answer["username"].split(":")[0]) > time.time()

    good = runUclient(
        turnPort, echoPeer.port, ("-u", answer["username"], "-w", answer["password"]),
        messages=30, clients=1,
    )
    assert good.stats is not None, good
    assert good.stats["lost"] == 0 and good.stats["received"] == good.stats["sent"] == 30, good
    overTcp = runUclient(
        turnPort, echoPeer.port, ("-u", answer["username"], "-w", answer["password"]),
        messages=30, clients=1, transport="tcp",
    )
    assert overTcp.stats is not None, overTcp
    assert overTcp.stats["lost"] == 0 and overTcp.stats["received"] == 30, overTcp

    bad = runUclient(
        turnPort, echoPeer.port, ("-u", answer["username"], "-w", answer["password"][::-1]),
        messages=5, clients=1,
    )
    assert bad.stats is None or bad.stats["received"] == 0, bad
