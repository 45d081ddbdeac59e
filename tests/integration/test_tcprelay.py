# -*- test-case-name: tests.integration.test_tcprelay -*-
"""
RFC 6062 TCP relays on a real C{twistd turn}, driven by coturn's C{turnutils_uclient -T}: its
clients allocate TCP relays and connect to each other's relayed addresses, which exercises
Connect, ConnectionAttempt and ConnectionBind from both ends.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.harness import (
    PASSWORD,
    USER,
    TurnServerProcess,
    UdpEchoPeer,
    assertNoLoss,
    requireTool,
    runUclient,
    writeCertificate,
)
from tests.integration.netns import PRIVATE_RELAY, runInNetworkNamespace

pytestmark = pytest.mark.integration

MESSAGES = 30
STATIC = ("--user", f"{USER}:{PASSWORD}")


@pytest.fixture(autouse=True)
def coturnTools() -> None:
    requireTool("turnutils_uclient")
    requireTool("turnutils_peer")


def runTcpRelay(port: int, peerPort: int, transport: str = "tcp"):
    """
    uclient -T: one client pair (two allocations) exchanging C{MESSAGES} messages each way
    through two TCP relays.
    """
    return runUclient(
        port, peerPort, ("-u", USER, "-w", PASSWORD), messages=MESSAGES, clients=1,
        transport=transport, familyFlags=("-T",),
    )


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_tcpRelayZeroLoss(turnServer, echoPeer, tmp_path, transport) -> None:
    """
    With --tcp-relay, uclient's TCP relays carry every message, over a TCP and a TLS control
    connection. Its two allocations connect to each other's relayed addresses, which are
    loopback here: that takes --allow-loopback-peers.
    """
    certFile, keyFile, _ = writeCertificate(tmp_path / "tls", "turn-test")
    server = turnServer(
        *STATIC, "--tcp-relay", "--allow-loopback-peers", "--cert", certFile, "--pkey", keyFile
    )
    port = server.tlsPort if transport == "tls" else server.port
    result = runTcpRelay(port, echoPeer.port, transport)
    # uclient -T counts each client of the pair: twice the messages.
    assertNoLoss(result, 2 * MESSAGES)


def test_connectionsLeaveFromRelayedAddress(turnServer, echoPeer) -> None:
    """
    RFC 6062 section 5.2: a Connect's connection leaves from the relayed address and port.
    uclient -T connects its two allocations to each other, so every peer the server sees
    connecting to a relayed address is the other relayed address, port included.
    """
    server = turnServer(*STATIC, "--tcp-relay", "--allow-loopback-peers", "--verbose")
    assertNoLoss(runTcpRelay(server.port, echoPeer.port), 2 * MESSAGES)
    log = server.log()
    relayed = set(re.findall(r"Allocated TCP relay (\('[^']+', \d+\))", log))
    peers = re.findall(r"TCP relay \('[^']+', \d+\): peer (\('[^']+', \d+\)) connected", log)
    assert relayed and peers, log
    assert set(peers) <= relayed, (peers, relayed)


def privateRelayScenario(workdir: str, allowLoopback: bool) -> dict:
    """
    In a network namespace whose loopback also holds L{PRIVATE_RELAY}: uclient -T against a
    server relaying on that private address.
    """
    server = TurnServerProcess(
        Path(workdir) / "turn.log",
        [*STATIC, "--tcp-relay", *(["--allow-loopback-peers"] if allowLoopback else [])],
        relayHosts=(PRIVATE_RELAY,),
    )
    peer = UdpEchoPeer(Path(workdir) / "peer.log")
    try:
        result = runTcpRelay(server.port, peer.port)
    finally:
        peer.stop()
        server.stop()
    return {"returncode": result.returncode, "stats": result.stats, "output": result.output[-3000:]}


def test_tcpRelayBetweenPrivateRelays(tmp_path) -> None:
    """
    On a private relay address, uclient's TCP relays reach each other without
    --allow-loopback-peers: the server's own non-loopback relayed addresses stay reachable.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_tcprelay:privateRelayScenario",
        {"workdir": str(tmp_path), "allowLoopback": False}, [PRIVATE_RELAY],
    )
    assert report["returncode"] == 0, report["output"]
    assert report["stats"] == {
        "sent": 2 * MESSAGES, "received": 2 * MESSAGES, "lost": 0, "sendDropped": 0,
    }, report["output"]


def test_loopbackTcpRelaysRefusedByDefault(turnServer, echoPeer) -> None:
    """
    On a loopback relay address without --allow-loopback-peers, the Connect from one TCP
    relay to the other's loopback relayed address is refused (403) and nothing is relayed.
    """
    server = turnServer(*STATIC, "--tcp-relay")
    result = runTcpRelay(server.port, echoPeer.port)
    assert result.returncode != 0, result
    assert result.stats is None, result
    assert "403" in result.output, result


@pytest.mark.parametrize("option", [(), ("--no-tcp-relay",)], ids=["default", "no-tcp-relay"])
def test_offByDefault(turnServer, echoPeer, option) -> None:
    """
    Without --tcp-relay (or with coturn's --no-tcp-relay) a TCP relay Allocate gets 442 and
    uclient gets nothing through.
    """
    server = turnServer(*STATIC, *option)
    result = runTcpRelay(server.port, echoPeer.port)
    assert result.returncode != 0, result
    assert result.stats is None, result
    assert "442" in result.output, result
