# -*- test-case-name: tests.integration.test_ipv6 -*-
"""
IPv6 against a real C{twistd turn}: IPv6 relayed addresses, dual-stack allocations
(ADDITIONAL-ADDRESS-FAMILY) and an IPv6 listener, with coturn's C{turnutils_uclient} relaying
to C{turnutils_peer} listening on C{::1}.

aioice is not used here: its TURN client never sends REQUESTED-ADDRESS-FAMILY or
ADDITIONAL-ADDRESS-FAMILY, so it cannot ask for an IPv6 relayed address (docs/ipv6.md).

Nor is a dual-stack request to a server without an IPv6 relay address run through uclient:
after its Allocate uclient -Z sends a Refresh naming a random family, and the IPv6 one rightly
gets 443 from an IPv4-only allocation, which uclient treats as fatal.  The unit tests cover
that case (ADDRESS-ERROR-CODE 440).
"""

from __future__ import annotations

import re
import socket
from typing import Sequence

import pytest

from tests.integration import harness
from tests.integration.harness import (
    HOST,
    PASSWORD,
    USER,
    UclientResult,
    UdpEchoPeer,
    requireTool,
)

pytestmark = pytest.mark.integration

HOST6 = "::1"
MESSAGES = 50
CLIENTS = 2
STATIC = ("--user", f"{USER}:{PASSWORD}")
MODES = [pytest.param(False, id="channel"), pytest.param(True, id="send")]


def ipv6Loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((HOST6, 0))
    except OSError:
        return False
    return True


@pytest.fixture(autouse=True)
def requirements() -> None:
    """
    Every test here needs coturn's client and echo peer, and an IPv6 loopback.
    """
    requireTool("turnutils_uclient")
    requireTool("turnutils_peer")
    if not ipv6Loopback():
        pytest.skip("this host has no IPv6 loopback (::1)")


@pytest.fixture
def echoPeer6(tmp_path) -> UdpEchoPeer:
    peer = UdpEchoPeer(tmp_path / "peer6.log", host=HOST6)
    yield peer
    peer.stop()


def runUclient(
    serverHost: str,
    serverPort: int,
    peerHost: str,
    peerPort: int,
    familyFlags: Sequence[str],
    *,
    sendIndications: bool = False,
    transport: str = "udp",
) -> UclientResult:
    """
    L{tests.integration.harness.runUclient} with C{CLIENTS} clients of C{MESSAGES} messages,
    the relay family flags (C{-x}, C{-X}, C{-Z}), the peer host and the client transport
    given.
    """
    return harness.runUclient(
        serverPort, peerPort, ("-u", USER, "-w", PASSWORD), messages=MESSAGES,
        clients=CLIENTS, sendIndications=sendIndications, serverHost=serverHost,
        peerHost=peerHost, familyFlags=familyFlags, transport=transport,
    )


#: The server's debug line for an allocation with two relayed addresses (--verbose).
DUAL_STACK_LOG = re.compile(r"Allocated \('127\.0\.0\.1', \d+\) and \('::1', \d+\)")


def assertAllDualStack(log: str) -> None:
    """
    Every allocation the server made (uclient makes two per client) has both relayed
    addresses.
    """
    allocated = re.findall(r"Allocated .*", log)
    assert allocated, log
    assert all(DUAL_STACK_LOG.search(line) for line in allocated), log


def assertNoLoss(result: UclientResult) -> None:
    harness.assertNoLoss(result, MESSAGES * CLIENTS)


@pytest.mark.parametrize("sendIndications", MODES)
def test_ipv6RelayZeroLoss(turnServer, echoPeer6, sendIndications) -> None:
    """
    With --relay-ip given for both families, uclient asking for an IPv6 relayed address
    (REQUESTED-ADDRESS-FAMILY) relays to an IPv6 peer with no loss, over channels and over
    Send/Data indications.
    """
    server = turnServer(*STATIC, "--relay-ip", HOST6, "--allow-loopback-peers")
    result = runUclient(
        HOST, server.port, HOST6, echoPeer6.port, ["-x"], sendIndications=sendIndications
    )
    assertNoLoss(result)


@pytest.mark.parametrize("sendIndications", MODES)
def test_dualStackIPv6HalfZeroLoss(turnServer, echoPeer6, sendIndications) -> None:
    """
    A dual-stack allocation (uclient -Z sends ADDITIONAL-ADDRESS-FAMILY IPv6, under the pre-RFC
    code point coturn still uses) gets both relayed addresses; relaying through its IPv6 one
    to an IPv6 peer loses nothing.
    """
    server = turnServer(*STATIC, "--relay-ip", HOST6, "--allow-loopback-peers", "--verbose")
    result = runUclient(
        HOST, server.port, HOST6, echoPeer6.port, ["-Z", "-x"], sendIndications=sendIndications
    )
    assertNoLoss(result)
    assertAllDualStack(server.log())


@pytest.mark.parametrize("sendIndications", MODES)
def test_dualStackIPv4HalfZeroLoss(turnServer, echoPeer, sendIndications) -> None:
    """
    Relaying through the IPv4 relayed address of a dual-stack allocation to an IPv4 peer
    loses nothing either.
    """
    server = turnServer(*STATIC, "--relay-ip", HOST6, "--allow-loopback-peers", "--verbose")
    result = runUclient(
        HOST, server.port, HOST, echoPeer.port, ["-Z", "-X"], sendIndications=sendIndications
    )
    assertNoLoss(result)
    assertAllDualStack(server.log())


def test_ipv6RelayRefusedWithoutIPv6RelayAddress(turnServer, echoPeer6) -> None:
    """
    Without an IPv6 relay address, asking for one gets 440 and uclient gives up without
    relaying anything.
    """
    server = turnServer(*STATIC, "--allow-loopback-peers")
    result = runUclient(HOST, server.port, HOST6, echoPeer6.port, ["-x"])
    assert result.returncode != 0, result
    assert result.stats is None, result


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("sendIndications", MODES)
def test_ipv6ListenerZeroLoss(
    turnServer, echoPeer, echoPeer6, sendIndications, transport
) -> None:
    """
    With --listening-ip ::1 as well, a client reaching the server over IPv6 (UDP or TCP)
    relays with no loss through an IPv6 relayed address to an IPv6 peer, and through an IPv4
    relayed address to an IPv4 peer.
    """
    server = turnServer(
        *STATIC, "--listening-ip", HOST6, "--relay-ip", HOST6, "--allow-loopback-peers"
    )
    assertNoLoss(
        runUclient(
            HOST6, server.port, HOST6, echoPeer6.port, ["-x"], sendIndications=sendIndications,
            transport=transport,
        )
    )
    assertNoLoss(
        runUclient(
            HOST6, server.port, HOST, echoPeer.port, ["-X"], sendIndications=sendIndications,
            transport=transport,
        )
    )
