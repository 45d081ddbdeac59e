# -*- test-case-name: tests.test_protocol -*-
"""
The DatagramProtocols of listener and relay sockets.

This is the data path: ChannelData from a client and datagrams from a peer are relayed here with
a dictionary lookup, an expiry comparison and a write.  STUN messages go to
L{twisted_turn.server.TurnServer}.  Nothing on this path logs, formats or raises: a write that
fails is counted and dropped.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from twisted.internet.protocol import DatagramProtocol

from twisted_turn import udp
from twisted_turn._log import makeLogger, worthLogging
from twisted_turn.bandwidth import BURST_SECONDS, admitUp
from twisted_turn.allocation import Address
from twisted_turn.stun.message import decodeSendIndication

_log = makeLogger(__name__)

# The socket module lacks these constants, so Linux's values (linux/in.h, linux/in6.h):
# IP_MTU_DISCOVER = IP_PMTUDISC_DO sets DF on IPv4; IPV6_DONTFRAG = 1 refuses to fragment IPv6.
# Elsewhere DONT-FRAGMENT is answered with 420, as RFC 8656 section 7.2 asks.
_DONT_FRAGMENT = (
    {
        socket.AF_INET: (socket.IPPROTO_IP, 10, 2),
        socket.AF_INET6: (socket.IPPROTO_IPV6, 62, 1),
    }
    if sys.platform.startswith("linux")
    else {}
)


def reportInternalError(counters: Any) -> None:
    """
    Count an unexpected exception and log it, with its traceback, for the first few and then
    every thousandth: a bug that a packet can trigger must not become a way to flood the log.
    """
    counters["internalError"] += 1
    count = counters["internalError"]
    if worthLogging(count):
        _log.failure("Unexpected error handling a datagram ({count} so far)", count=count)


def relayChannelData(server: Any, counters: Any, allocation: Any, data: bytes, now: float) -> None:
    """
    Relay one whole ChannelData message (no stream padding) from C{allocation}'s client to the
    peer bound to its channel; drop and count anything else.  The stream listeners use it; the
    UDP listener has the same steps inline, since it is the measured hot path.
    """
    binding = allocation.channels.get((data[0] << 8) | data[1])
    if binding is None or binding.expiresAt < now or allocation.expiresAt < now:
        counters["dropChannelUnbound"] += 1
        return
    if binding.restricted and not server.peerReachable(binding.peer):
        counters["dropPeerDenied"] += 1
        return
    # The bandwidth limit, if any (twisted_turn.bandwidth): nothing to pay without one.
    if allocation.bps and not admitUp(allocation, len(data) - 4, now):
        counters["dropBandwidthUp"] += 1
        return
    allocation.upPackets += 1
    allocation.upBytes += len(data) - 4
    try:
        binding.relay.write(data[4:], binding.peer)
    except Exception:
        counters["dropWriteFailed"] += 1


class ListenerProtocol(DatagramProtocol):
    """
    A client-facing UDP socket: ChannelData is relayed to the bound peer, STUN goes to the
    server, anything else is dropped and counted.
    """

    def __init__(self, server: Any, clock: Any) -> None:
        self._server = server
        self._counters = server.counters
        self._clock = clock
        self._clients: dict = {}
        self.serverAddress: Address = ("", 0)

    def startProtocol(self) -> None:
        host = self.transport.getHost()
        self.serverAddress = (host.host, host.port)
        self._clients = self._server.table.clientsOf("udp", self.serverAddress)

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        if len(data) < 4:
            self._counters["dropShort"] += 1
            return
        first = data[0]
        if 0x40 <= first <= 0x7F:
            allocation = self._clients.get(addr)
            if allocation is None:
                self._counters["dropChannelNoAllocation"] += 1
                return
            binding = allocation.channels.get((first << 8) | data[1])
            now = self._clock.seconds()
            if binding is None or binding.expiresAt < now or allocation.expiresAt < now:
                self._counters["dropChannelUnbound"] += 1
                return
            length = (data[2] << 8) | data[3]
            if length > len(data) - 4:
                self._counters["dropChannelMalformed"] += 1
                return
            if binding.restricted and not self._server.peerReachable(binding.peer):
                self._counters["dropPeerDenied"] += 1
                return
            if allocation.bps:
                # admitUp, inline on the measured hot path.
                due = allocation.upDue
                if due > now:
                    if due - now > BURST_SECONDS:
                        self._counters["dropBandwidthUp"] += 1
                        return
                else:
                    due = now
                allocation.upDue = due + length * allocation.secondsPerByte
            allocation.upPackets += 1
            allocation.upBytes += length
            try:
                # The binding's own relay: the relayed address of the peer's family.
                binding.relay.write(data[4 : 4 + length], binding.peer)
            except Exception:
                self._counters["dropWriteFailed"] += 1
        elif first < 4:
            try:
                if first == 0 and data[1] == 0x16 and self._relaySend(data, addr):
                    return
                self._server.handleStun(data, self.transport, addr, self.serverAddress)
            except Exception:
                reportInternalError(self._counters)
        else:
            self._counters["dropNotStun"] += 1

    def _relaySend(self, data: bytes, addr: Address) -> bool:
        """
        Relay a plain Send indication to a permitted peer without the full decode; C{False}
        when anything is unusual (no allocation, no permission, a port-restricted peer, an
        attribute L{decodeSendIndication} leaves to the full decoder), so the server decides and
        counts exactly as before.
        """
        allocation = self._clients.get(addr)
        if allocation is None:
            return False
        send = decodeSendIndication(data)
        if send is None:
            return False
        host, port, payload = send
        now = self._clock.seconds()
        if (
            allocation.expiresAt < now
            or allocation.permissions.get(host, -1.0) < now
            or host in allocation.restrictedPeers
        ):
            return False
        if allocation.bps and not admitUp(allocation, len(payload), now):
            self._counters["dropBandwidthUp"] += 1
            return True
        allocation.upPackets += 1
        allocation.upBytes += len(payload)
        try:
            # decodeSendIndication gives IPv4 peers only, and an allocation with an IPv4
            # permission has an IPv4 relayed address, which is always its first: relay.
            allocation.relay.write(payload, (host, port))
        except Exception:
            self._counters["dropWriteFailed"] += 1
        return True


class RelayProtocol(DatagramProtocol):
    """
    A relay socket: datagrams from permitted peers go to the client as ChannelData when a
    channel is bound, else as a Data indication.  Both relay sockets of a dual-stack allocation
    attach to it; each receives only peers of its own family.

    It is also the relay handle L{twisted_turn.relay.RelayPortAllocator} hands out: until
    L{attach} is called (a reserved EVEN-PORT socket) it drops everything.
    """

    allocation: Any = None
    # One of these opens per allocation: no "Starting protocol" line for each.
    noisy = False

    def __init__(self, server: Any, clock: Any) -> None:
        self._server = server
        self._counters = server.counters
        self._clock = clock

    def attach(self, allocation: Any) -> None:
        self.allocation = allocation

    def close(self) -> None:
        self.allocation = None
        if self.transport is not None:
            # Keep its kernel drop count (a batching port does so itself; Twisted's does not).
            udp.release(self.transport)
            self.transport.stopListening()

    def setDontFragment(self) -> bool:
        """
        Set the DF bit on relayed datagrams (DONT-FRAGMENT); C{False} where unsupported.
        """
        sock = getattr(self.transport, "socket", None)
        option = None if sock is None else _DONT_FRAGMENT.get(sock.family)
        if option is None:
            return False
        try:
            sock.setsockopt(*option)
        except OSError:
            return False
        return True

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        allocation = self.allocation
        if allocation is None:
            self._counters["dropRelayUnattached"] += 1
            return
        now = self._clock.seconds()
        if allocation.permissions.get(addr[0], -1.0) < now or allocation.expiresAt < now:
            self._counters["dropPeerNoPermission"] += 1
            return
        if allocation.bps:
            # admitUp's twin for the downlink, inline on the measured hot path.
            due = allocation.downDue
            if due > now:
                if due - now > BURST_SECONDS:
                    self._counters["dropBandwidthDown"] += 1
                    return
            else:
                due = now
            allocation.downDue = due + len(data) * allocation.secondsPerByte
        allocation.downPackets += 1
        allocation.downBytes += len(data)
        binding = allocation.peerChannels.get(addr)
        # Building the message is inside the try too: a datagram too large for the client's
        # framing (a 65527-byte IPv6 datagram as a Data indication) fails there.
        try:
            if binding is not None and binding.expiresAt >= now:
                message = binding.header + len(data).to_bytes(2, "big") + data
            else:
                message = self._server.dataIndication(addr, data)
            allocation.clientTransport.write(message, allocation.client)
        except Exception:
            self._counters["dropWriteFailed"] += 1
