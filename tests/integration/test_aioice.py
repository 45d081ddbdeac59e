# -*- test-case-name: tests.integration.test_aioice -*-
"""
aioice's TURN client (the one aiortc uses) against a real C{twistd turn}.
"""

from __future__ import annotations

import asyncio
from typing import Optional, Tuple

import pytest

from tests.integration.harness import HOST, PASSWORD, USER, requireModule
from tests.integration.netns import PRIVATE_RELAY, runInNetworkNamespace

pytestmark = pytest.mark.integration

#: Seconds one asyncio scenario may take, all round trips included.
SCENARIO_TIMEOUT = 30.0

#: Seconds to wait for one datagram that should arrive.
ARRIVAL_TIMEOUT = 5.0


@pytest.fixture
def turn():
    """
    The C{aioice.turn} module, skipped (or failed under CI) when aioice is missing.
    """
    requireModule("aioice")
    return requireModule("aioice.turn")


class Inbox(asyncio.DatagramProtocol):
    """
    Keeps what arrives on an endpoint in a queue of C{(data, addr)}.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    async def next(self) -> Tuple[bytes, Tuple[str, int]]:
        return await asyncio.wait_for(self.queue.get(), ARRIVAL_TIMEOUT)


class Echo(asyncio.DatagramProtocol):
    """
    A plain UDP echo peer.
    """

    transport: Optional[asyncio.DatagramTransport] = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def echoAndRelay(turn, port: int, **options):
    """
    An echo peer on 127.0.0.1 and an aioice TURN endpoint on the server at C{port} (C{options}
    go to C{create_turn_endpoint}: C{transport}, C{ssl}): C{(echoTransport, peer, relay,
    inbox)}.
    """
    loop = asyncio.get_running_loop()
    echoTransport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
    peer = echoTransport.get_extra_info("sockname")
    relay, inbox = await turn.create_turn_endpoint(
        Inbox, server_addr=(HOST, port), username=USER, password=PASSWORD, **options
    )
    return echoTransport, peer, relay, inbox


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


TRANSPORTS = ["udp", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_relayToEchoPeer(turnServer, turn, transport) -> None:
    """
    aioice allocates a relay in the configured range, binds a channel to a UDP peer, and the
    peer's echo comes back through the relay; the peer sees the relay address as the source.
    It does so reaching the server over each client transport.
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")

    async def scenario() -> None:
        echoTransport, peer, relay, inbox = await echoAndRelay(
            turn, server.port, transport=transport
        )
        try:
            relayed = relay.get_extra_info("sockname")
            assert relayed[0] == HOST
            assert server.minPort <= relayed[1] <= server.maxPort, relayed
            assert relay.get_extra_info("related_address")[0] == HOST
            for payload in (b"first datagram", b"\x00" * 1000, b"third"):
                relay.sendto(payload, peer)
                assert await inbox.next() == (payload, peer)
        finally:
            relay.close()
            echoTransport.close()

    run(scenario())


async def deliver(sender, destination, inbox: Inbox, payload: bytes, source) -> None:
    """
    Send C{payload} from one TURN endpoint to C{destination} until it shows up in C{inbox}
    from C{source}: the first sends may arrive before the receiving side's permission exists.
    """
    for _ in range(10):
        sender.sendto(payload, destination)
        try:
            while True:
                data, addr = await asyncio.wait_for(inbox.queue.get(), 0.5)
                if data == payload:
                    assert addr == source
                    return
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"{payload!r} never reached {destination}")


async def _relayToRelay(turn, serverPort: int, transport: str, relayHost: str) -> None:
    """
    Two aioice endpoints on the server reach each other's relayed addresses on
    C{relayHost} both ways.
    """
    first, firstInbox = await turn.create_turn_endpoint(
        Inbox, server_addr=(HOST, serverPort), username=USER, password=PASSWORD,
        transport=transport,
    )
    second, secondInbox = await turn.create_turn_endpoint(
        Inbox, server_addr=(HOST, serverPort), username=USER, password=PASSWORD,
        transport=transport,
    )
    try:
        firstRelay = first.get_extra_info("sockname")
        secondRelay = second.get_extra_info("sockname")
        assert firstRelay != secondRelay
        assert firstRelay[0] == secondRelay[0] == relayHost
        # Each side's first send binds its channel, which is also its permission for the
        # other relay; until both exist, datagrams are dropped and deliver() sends again.
        first.sendto(b"opening", secondRelay)
        await deliver(second, firstRelay, firstInbox, b"hello first", secondRelay)
        await deliver(first, secondRelay, secondInbox, b"hello second", firstRelay)
    finally:
        first.close()
        second.close()


def relayToRelayScenario(workdir: str, transport: str) -> dict:
    """
    In a network namespace whose loopback also holds L{PRIVATE_RELAY}: a server relaying on
    that private address, without --allow-loopback-peers, and two aioice endpoints on it.
    """
    from pathlib import Path

    from tests.integration.harness import TurnServerProcess

    turn = requireModule("aioice.turn")
    server = TurnServerProcess(
        Path(workdir) / "turn.log", ["--user", f"{USER}:{PASSWORD}"],
        relayHosts=(PRIVATE_RELAY,),
    )
    try:
        run(_relayToRelay(turn, server.port, transport, PRIVATE_RELAY))
    finally:
        server.stop()
    return {"ok": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_relayToRelayWithoutLoopbackPeers(turn, transport, tmp_path) -> None:
    """
    Two aioice allocations on a server that denies loopback and private peers still reach
    each other's private relay addresses (the server's own non-loopback relays stay
    reachable), in both directions, over each client transport.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_aioice:relayToRelayScenario",
        {"workdir": str(tmp_path), "transport": transport}, [PRIVATE_RELAY],
    )
    assert report == {"ok": True}


def test_loopbackRelayToRelayNeedsLoopbackPeers(turnServer, turn) -> None:
    """
    With a loopback relay address, relay-to-relay is loopback peering: refused without
    --allow-loopback-peers (nothing arrives), working with it.
    """
    refusing = turnServer("--user", f"{USER}:{PASSWORD}")
    with pytest.raises(AssertionError, match="never reached"):
        run(_relayToRelay(turn, refusing.port, "udp", HOST))
    allowing = turnServer("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")
    run(_relayToRelay(turn, allowing.port, "udp", HOST))


def test_wrongPasswordGets401(turnServer, turn) -> None:
    """
    aioice with a wrong password gets no allocation: the authenticated retry fails with 401.
    """
    server = turnServer("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")
    stun = requireModule("aioice.stun")

    async def scenario() -> None:
        with pytest.raises(stun.TransactionFailed) as failure:
            await turn.create_turn_endpoint(
                Inbox, server_addr=(HOST, server.port), username=USER, password="wrong"
            )
        assert failure.value.response.attributes["ERROR-CODE"][0] == 401

    run(scenario())
    # The operator sees the refusal, with the client's address and the user.
    server.waitForLog("Refused Allocate from 127.0.0.1:")
    assert "401 Unauthorized: bad credentials for 'alice'" in server.log()
