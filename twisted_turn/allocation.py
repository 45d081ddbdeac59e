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

import math
import secrets
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from twisted_turn.stun.channeldata import CHANNEL_MAX, CHANNEL_MIN

Address = Tuple[str, int]

#: RFC 8656 section 12: after a binding expires, neither its number nor its peer may be bound
#: to anything else for another 5 minutes.
CHANNEL_COOLDOWN = 300.0

__all__ = ["CHANNEL_MIN", "CHANNEL_MAX", "CHANNEL_COOLDOWN", "FiveTuple", "Allocation",
           "AllocationTable", "ChannelBinding", "RelayedAddress", "familyOf"]


def familyOf(host: str) -> int:
    """
    The STUN address family (1 IPv4, 2 IPv6) of an address literal as the codec and the socket
    module format them (an IPv6 literal always has a colon, an IPv4 one never).
    """
    return 2 if ":" in host else 1


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
    @ivar relay: the transport of the relay socket ChannelData to the peer leaves through
        (C{write(data, addr)}), the allocation's relayed address of the peer's family, chosen
        once at bind time so the data path needs no family test.
    """

    __slots__ = ("number", "peer", "expiresAt", "header", "restricted", "relay")

    def __init__(self, number: int, peer: Address, expiresAt: float, relay: Any = None) -> None:
        self.number = number
        self.peer = peer
        self.expiresAt = expiresAt
        self.relay = relay
        # The peer is one of the server's own relay addresses: each datagram is checked
        # against the relay sockets open now, since the one bound to may have closed.
        self.restricted = False
        # Precomputed so that wrapping a peer datagram costs one struct call less.
        self.header = bytes((number >> 8, number & 0xFF))


class RelayedAddress:
    """
    One relayed transport address of an allocation (RFC 8656 section 2.2) and the relay socket
    bound there.

    @ivar family: 1 (IPv4) or 2 (IPv6).
    @ivar address: the C{(host, port)} the relay socket is bound to.
    @ivar externalAddress: the C{(host, port)} announced in XOR-RELAYED-ADDRESS.
    @ivar handle: the relay handle (see L{twisted_turn.relay}), freed through the allocator.
    @ivar transport: the relay socket's transport (C{write(data, addr)}).
    """

    __slots__ = ("family", "address", "externalAddress", "handle", "transport")

    def __init__(self, address: Address, externalAddress: Address, handle: Any = None) -> None:
        self.family = familyOf(address[0])
        self.address = address
        self.externalAddress = externalAddress
        self.handle = handle
        self.transport = getattr(handle, "transport", None)

    def __repr__(self) -> str:
        return f"<RelayedAddress {self.address} as {self.externalAddress}>"


class Allocation:
    """
    One or two relayed transport addresses (one per address family: a dual-stack allocation,
    RFC 8656 section 7.2) and everything bound to them.

    Permissions and channels are per peer; each peer has one family, so it is reached through
    the relayed address of that family (L{relayFor}).  The server never installs a permission
    for a family the allocation has no relayed address of (443).

    @ivar permissions: peer IP (canonical text form) to expiry time.
    @ivar restrictedPeers: permitted IPs reachable only on some ports (the server's own relay
        addresses): sends to them have their port checked.
    @ivar channels: channel number to L{ChannelBinding}.
    @ivar peerChannels: peer C{(host, port)} to L{ChannelBinding}.
    @ivar relayed: the L{RelayedAddress}es, IPv4 first.
    @ivar relayAddress: the first relayed address's C{(host, port)} (the IPv4 one of a
        dual-stack allocation); with L{externalAddress}, L{relay} and L{relayPort}, the
        single-family view most code needs.
    @ivar relay: the first relayed address's transport (C{write(data, addr)}): whenever the
        allocation has an IPv4 relayed address this is it, so data to an IPv4 peer always
        leaves through C{relay}.
    @ivar relayPort: the first relayed address's relay handle.
    @ivar relay6: the IPv6 relay transport of a dual-stack allocation, L{None} otherwise (a
        single-family allocation sends everything through L{relay}).
    @ivar clientTransport: the listener transport replies and peer data go out on.
    @ivar allocateTransactionId: the transaction id of the Allocate that created it, so that a
        retransmission gets the same response (RFC 8656 section 7.2).
    @ivar bps: its bandwidth limit in bytes a second, each direction on its own; 0 for none
        (L{twisted_turn.bandwidth}).
    @ivar upDue: when what its client sent to peers so far would have gone out at the rate
        (L{twisted_turn.bandwidth.admitUp}); L{downDue} the same for what peers sent it.
    @ivar upPackets: datagrams relayed from its client to peers (L{upBytes}: their payload
        bytes); L{downPackets} and L{downBytes} the same from peers to its client.  They move
        while the allocation lives (metrics, the admin API).
    @ivar createdAt: when it was made.
    """

    __slots__ = (
        "fiveTuple", "client", "username", "relayAddress", "externalAddress", "expiresAt",
        "permissions", "restrictedPeers", "channels", "peerChannels", "relay", "relayPort",
        "relay6", "relayed", "clientTransport", "allocateTransactionId", "allocateResponse",
        "tcp", "bps", "secondsPerByte", "upDue", "downDue", "upPackets", "upBytes",
        "downPackets", "downBytes", "createdAt", "sessionId", "quotaShared",
    )

    def __init__(
        self,
        fiveTuple: FiveTuple,
        username: Optional[str],
        relayAddress: Address,
        externalAddress: Address,
        expiresAt: float,
        handle: Any = None,
    ) -> None:
        """
        @param relayAddress: the first relayed address (L{addRelayed} adds the other family's).
        @param externalAddress: what XOR-RELAYED-ADDRESS announces for it.
        @param handle: its relay handle; its C{transport} becomes L{relay}.
        """
        self.fiveTuple = fiveTuple
        # Kept as a tuple of its own: the downlink sends to it once per datagram.
        self.client = fiveTuple.client
        self.username = username
        self.expiresAt = expiresAt
        self.permissions: Dict[str, float] = {}
        self.restrictedPeers: Set[str] = set()
        self.channels: Dict[int, ChannelBinding] = {}
        self.peerChannels: Dict[Address, ChannelBinding] = {}
        self.relayed: List[RelayedAddress] = [
            RelayedAddress(relayAddress, externalAddress, handle)
        ]
        self._syncRelays()
        self.clientTransport: Any = None
        self.allocateTransactionId = b""
        self.allocateResponse = b""
        #: A TCP relay (RFC 6062): its relayed address is a listening TCP socket.
        self.tcp = False
        self.bps = 0.0
        self.secondsPerByte = 0.0
        self.upDue = self.downDue = 0.0
        self.upPackets = self.upBytes = self.downPackets = self.downBytes = 0
        self.createdAt = 0.0
        #: What the admin API calls it: random, so that an id says nothing of the others.
        self.sessionId = secrets.token_hex(8)
        #: Whether a shared quota (worker processes) counts it, to be released when it ends.
        self.quotaShared = False

    # -- relayed addresses -----------------------------------------------------------------

    def _syncRelays(self) -> None:
        first = self.relayed[0]
        self.relayAddress = first.address
        self.externalAddress = first.externalAddress
        self.relay = first.transport
        self.relayPort = first.handle
        self.relay6 = self.relayed[1].transport if len(self.relayed) > 1 else None

    @property
    def families(self) -> Tuple[int, ...]:
        """
        The address families of the relayed addresses, IPv4 first.
        """
        return tuple(relayed.family for relayed in self.relayed)

    def hasFamily(self, family: int) -> bool:
        return any(relayed.family == family for relayed in self.relayed)

    def addRelayed(self, address: Address, externalAddress: Address, handle: Any) -> None:
        """
        Add the relayed address of the other family (a dual-stack allocation).

        @raise ValueError: the allocation already has a relayed address of that family.
        """
        relayed = RelayedAddress(address, externalAddress, handle)
        if self.hasFamily(relayed.family):
            raise ValueError(f"already a relayed address of family {relayed.family}")
        self.relayed.append(relayed)
        self.relayed.sort(key=lambda entry: entry.family)
        self._syncRelays()

    def relayFor(self, host: str) -> Any:
        """
        The relay transport data to C{host} leaves through: the relayed address of its family.
        Only meaningful for a family the allocation has (the server checks with L{hasFamily}).
        """
        if self.relay6 is not None and ":" in host:
            return self.relay6
        return self.relay

    def dropFamily(self, family: int, now: float) -> RelayedAddress:
        """
        Remove the relayed address of C{family} from a dual-stack allocation (a Refresh with
        LIFETIME 0 and REQUESTED-ADDRESS-FAMILY), with the permissions of that family.  Its
        channels expire now, so their numbers and peers cool down like any expired binding
        (RFC 8656 section 12) and the data path stops using them at once.  The caller frees
        the returned address's port.

        @raise ValueError: C{family} is the allocation's only one (delete the allocation
            instead) or one it does not have.
        """
        if len(self.relayed) < 2:
            raise ValueError("cannot drop the only relayed address of an allocation")
        relayed = next((entry for entry in self.relayed if entry.family == family), None)
        if relayed is None:
            raise ValueError(f"no relayed address of family {family}")
        self.relayed.remove(relayed)
        for host in [host for host in self.permissions if familyOf(host) == family]:
            del self.permissions[host]
            self.restrictedPeers.discard(host)
        # Just before now: the data path compares "expiresAt < now".
        expired = math.nextafter(now, -math.inf)
        for binding in self.channels.values():
            if familyOf(binding.peer[0]) == family and binding.expiresAt > expired:
                binding.expiresAt = expired
        self._syncRelays()
        return relayed

    # -- permissions and channels ----------------------------------------------------------

    def dropPeer(self, peerHost: str) -> int:
        """
        Remove the permission for C{peerHost} and the channels bound to it (a policy reload
        refused it).

        @return: how many permissions and channels were removed.
        """
        removed = 1 if self.permissions.pop(peerHost, None) is not None else 0
        self.restrictedPeers.discard(peerHost)
        for binding in [b for b in self.channels.values() if b.peer[0] == peerHost]:
            self._unbind(binding.number)
            removed += 1
        return removed

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
        Bind or refresh a channel; the caller has checked L{channelConflict} and that the
        allocation has the peer's family.  A binding whose cooldown is over is replaced.  The
        binding sends through the relayed address of the peer's family (L{relayFor}).
        """
        binding = self.channels.get(number)
        if binding is not None and binding.peer == peer:
            binding.expiresAt = expiresAt
            return binding
        self._unbind(number)
        stale = self.peerChannels.get(peer)
        if stale is not None:
            self._unbind(stale.number)
        binding = ChannelBinding(number, peer, expiresAt, self.relayFor(peer[0]))
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
    Every live allocation, by 5-tuple, by relay address, by user and by session id.
    """

    def __init__(self) -> None:
        self._byListener: Dict[Tuple[str, Address], Dict[Address, Allocation]] = {}
        self._byUser: Dict[Optional[str], int] = {}
        self._byId: Dict[str, Allocation] = {}
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

    def bySessionId(self, sessionId: str) -> Optional[Allocation]:
        return self._byId.get(sessionId)

    def add(self, allocation: Allocation) -> None:
        fiveTuple = allocation.fiveTuple
        self.clientsOf(fiveTuple.transport, fiveTuple.server)[fiveTuple.client] = allocation
        self._byUser[allocation.username] = self._byUser.get(allocation.username, 0) + 1
        self._byId[allocation.sessionId] = allocation
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
        self._byId.pop(allocation.sessionId, None)
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
