# -*- test-case-name: tests.test_allocation -*-
"""
Allocation state (RFC 8656 sections 2.2, 9 and 12), with no I/O.

Expiry is a timestamp compared lazily by whoever reads the state, plus one periodic
L{AllocationTable.sweep}; nothing here owns a timer.

An allocation is found by its 5-tuple.  The listener side of the data path looks allocations up
in a per-listener dictionary keyed by the client's C{(host, port)} (see
L{AllocationTable.clientsOf}), so the per-packet cost is one dictionary lookup and no object is
built to make the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from twisted_turn.stun.channeldata import CHANNEL_MAX, CHANNEL_MIN

Address = Tuple[str, int]

#: RFC 8656 section 12: after a binding expires, neither its number nor its peer may be bound
#: to anything else for another 5 minutes.
CHANNEL_COOLDOWN = 300.0

__all__ = ["CHANNEL_MIN", "CHANNEL_MAX", "CHANNEL_COOLDOWN", "FiveTuple", "Allocation",
           "AllocationTable", "ChannelBinding"]


@dataclass(frozen=True)
class FiveTuple:
    """
    The client's address, the server address it reached, and the transport protocol.
    """

    clientHost: str
    clientPort: int
    serverHost: str
    serverPort: int
    transport: str = "udp"

    @property
    def client(self) -> Address:
        return (self.clientHost, self.clientPort)

    @property
    def server(self) -> Address:
        return (self.serverHost, self.serverPort)


class ChannelBinding:
    """
    A channel number bound to a peer transport address (RFC 8656 section 12).

    @ivar expiresAt: when the binding stops relaying data.
    @ivar restricted: the peer is a relay address reachable only on open relay ports.
    """

    __slots__ = ("number", "peer", "expiresAt", "header", "restricted")

    def __init__(self, number: int, peer: Address, expiresAt: float) -> None:
        self.number = number
        self.peer = peer
        self.expiresAt = expiresAt
        # The peer is one of the server's own relay addresses: each datagram is checked
        # against the relay sockets open now, since the one bound to may have closed.
        self.restricted = False
        # Precomputed so that wrapping a peer datagram costs one struct call less.
        self.header = bytes((number >> 8, number & 0xFF))


class Allocation:
    """
    One relayed transport address and everything bound to it.

    @ivar permissions: peer IP (canonical text form) to expiry time.
    @ivar restrictedPeers: permitted IPs reachable only on some ports (the server's own relay
        addresses): sends to them have their port checked.
    @ivar channels: channel number to L{ChannelBinding}.
    @ivar peerChannels: peer C{(host, port)} to L{ChannelBinding}.
    @ivar relay: the relay socket's transport (C{write(data, addr)}), set by the server.
    @ivar clientTransport: the listener transport replies and peer data go out on.
    @ivar allocateTransactionId: the transaction id of the Allocate that created it, so that a
        retransmission gets the same response (RFC 8656 section 7.2).
    """

    __slots__ = (
        "fiveTuple", "client", "username", "relayAddress", "externalAddress", "expiresAt",
        "permissions", "restrictedPeers", "channels", "peerChannels", "relay", "relayPort",
        "clientTransport", "allocateTransactionId", "allocateResponse",
    )

    def __init__(
        self,
        fiveTuple: FiveTuple,
        username: Optional[str],
        relayAddress: Address,
        externalAddress: Address,
        expiresAt: float,
    ) -> None:
        self.fiveTuple = fiveTuple
        # Kept as a tuple of its own: the downlink sends to it once per datagram.
        self.client = fiveTuple.client
        self.username = username
        self.relayAddress = relayAddress
        self.externalAddress = externalAddress
        self.expiresAt = expiresAt
        self.permissions: Dict[str, float] = {}
        self.restrictedPeers: Set[str] = set()
        self.channels: Dict[int, ChannelBinding] = {}
        self.peerChannels: Dict[Address, ChannelBinding] = {}
        self.relay: Any = None
        self.relayPort: Any = None
        self.clientTransport: Any = None
        self.allocateTransactionId = b""
        self.allocateResponse = b""

    def installPermission(self, peerHost: str, expiresAt: float) -> None:
        """
        Install or refresh the permission for C{peerHost} (RFC 8656 section 9).
        """
        self.permissions[peerHost] = expiresAt

    def hasPermission(self, peerHost: str, now: float) -> bool:
        return self.permissions.get(peerHost, -1.0) >= now

    def channelConflict(self, number: int, peer: Address, now: float) -> bool:
        """
        Whether binding C{number} to C{peer} breaks RFC 8656 section 12's rules: a number
        bound (or cooling down) to another peer, or a peer bound (or cooling down) to another
        number.
        """
        byNumber = self.channels.get(number)
        if byNumber is not None and byNumber.peer != peer:
            return byNumber.expiresAt + CHANNEL_COOLDOWN >= now
        byPeer = self.peerChannels.get(peer)
        if byPeer is not None and byPeer.number != number:
            return byPeer.expiresAt + CHANNEL_COOLDOWN >= now
        return False

    def bindChannel(self, number: int, peer: Address, expiresAt: float) -> ChannelBinding:
        """
        Bind or refresh a channel; the caller has checked L{channelConflict}.  A binding
        whose cooldown is over is replaced.
        """
        binding = self.channels.get(number)
        if binding is not None and binding.peer == peer:
            binding.expiresAt = expiresAt
            return binding
        self._unbind(number)
        stale = self.peerChannels.get(peer)
        if stale is not None:
            self._unbind(stale.number)
        binding = ChannelBinding(number, peer, expiresAt)
        self.channels[number] = binding
        self.peerChannels[peer] = binding
        return binding

    def _unbind(self, number: int) -> None:
        binding = self.channels.pop(number, None)
        if binding is not None:
            self.peerChannels.pop(binding.peer, None)

    def prune(self, now: float) -> None:
        """
        Forget expired permissions and channels whose cooldown is over.
        """
        expired = [peer for peer, until in self.permissions.items() if until < now]
        for peer in expired:
            del self.permissions[peer]
            self.restrictedPeers.discard(peer)
        done = [
            number for number, binding in self.channels.items()
            if binding.expiresAt + CHANNEL_COOLDOWN < now
        ]
        for number in done:
            self._unbind(number)


class AllocationTable:
    """
    Every live allocation, by 5-tuple, by relay address and by user.
    """

    def __init__(self) -> None:
        self._byListener: Dict[Tuple[str, Address], Dict[Address, Allocation]] = {}
        self._byUser: Dict[Optional[str], int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Allocation]:
        for clients in self._byListener.values():
            yield from list(clients.values())

    def clientsOf(self, transport: str, server: Address) -> Dict[Address, Allocation]:
        """
        The live dictionary of client address to allocation for one listener: the data path
        keeps a reference to it and does its lookups there.
        """
        return self._byListener.setdefault((transport, server), {})

    def get(self, fiveTuple: FiveTuple) -> Optional[Allocation]:
        clients = self._byListener.get((fiveTuple.transport, fiveTuple.server))
        if clients is None:
            return None
        return clients.get(fiveTuple.client)

    def countForUser(self, username: Optional[str]) -> int:
        return self._byUser.get(username, 0)

    def add(self, allocation: Allocation) -> None:
        fiveTuple = allocation.fiveTuple
        self.clientsOf(fiveTuple.transport, fiveTuple.server)[fiveTuple.client] = allocation
        self._byUser[allocation.username] = self._byUser.get(allocation.username, 0) + 1
        self._count += 1

    def remove(self, allocation: Allocation) -> bool:
        """
        Remove an allocation; C{False} if it was not in the table.
        """
        fiveTuple = allocation.fiveTuple
        clients = self._byListener.get((fiveTuple.transport, fiveTuple.server))
        if clients is None or clients.get(fiveTuple.client) is not allocation:
            return False
        del clients[fiveTuple.client]
        remaining = self._byUser[allocation.username] - 1
        if remaining:
            self._byUser[allocation.username] = remaining
        else:
            del self._byUser[allocation.username]
        self._count -= 1
        return True

    def sweep(self, now: float) -> List[Allocation]:
        """
        Remove and return the expired allocations; prune the state of the others.
        """
        expired = []
        for allocation in self:
            if allocation.expiresAt < now:
                self.remove(allocation)
                expired.append(allocation)
            else:
                allocation.prune(now)
        return expired
