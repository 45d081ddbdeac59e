# -*- test-case-name: tests.test_stream -*-
"""
Clients over TCP and TLS (RFC 8656 sections 3.1 and 12.5).

One L{StreamConnection} per client connection: the bytes are split into STUN messages and
ChannelData by L{twisted_turn.stun.framing.StreamFramer}; STUN goes to the server as from a UDP
listener (the connection is the transport replies go out on), ChannelData to its peer.  The
connection is the allocation's C{clientTransport}: its C{write(data, addr)} pads ChannelData to
a multiple of four bytes, as streams require.

Lifetime rules:
  - an allocation made over a connection lives as long as the connection (RFC 8656 section 3.1):
    closing the connection deletes it;
  - a connection with no live allocation is closed after L{IDLE_TIMEOUT} seconds (so a client
    that connects and never authenticates, or a TLS handshake that never finishes, holds a
    descriptor for at most that long);
  - a client that does not read has its relayed data dropped and counted once the transport's
    buffer is full, rather than buffered without bound.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Set

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from twisted_turn import udp
from twisted_turn._log import makeLogger
from twisted_turn.allocation import Address
from twisted_turn.protocol import relayChannelData, reportInternalError
from twisted_turn.stun.framing import MAX_MESSAGE, FramingError, StreamFramer

_log = makeLogger(__name__)

#: Seconds a connection may go without a live allocation before it is closed.
IDLE_TIMEOUT = 30.0

#: Largest message a connection may send before it has an allocation: requests are small, so
#: an unauthenticated connection cannot make the server hold 64 kB for it.
PRE_ALLOCATION_BUFFER = 4096

#: Connections without an allocation (yet) allowed from one client IP address, and in all, per
#: listener factory: past either, new connections are closed at once.  Connections with an
#: allocation, and bound RFC 6062 data connections, do not count.
MAX_PENDING_PER_SOURCE = 64
MAX_PENDING = 4096

#: The first two bytes of a Data indication (method DATA, class indication).
_DATA_INDICATION = b"\x00\x17"

_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


@implementer(IPushProducer)
class StreamConnection(Protocol):
    """
    One client connection over TCP or TLS.

    @ivar protocolName: the 5-tuple's transport, C{"tcp"} or C{"tls"}.
    """

    def __init__(self, server: Any, clock: Any, protocolName: str, idleTimeout: float) -> None:
        self._server = server
        self._counters = server.counters
        self._clock = clock
        self.protocolName = protocolName
        self._idleTimeout = idleTimeout
        self._framer = StreamFramer(maxBuffered=PRE_ALLOCATION_BUFFER, acceptChannelData=False)
        self._paused = False
        self._pending = False
        self._inDataReceived = False
        self.factory: Any = None
        self._idleCall: Any = None
        self._closed = False
        self.client: Address = ("", 0)
        self.serverAddress: Address = ("", 0)
        self._clients: dict = {}
        #: The peer connection this data connection is bound to (RFC 6062), or L{None}.
        self.spliced: Any = None

    # -- connection ----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = self.transport.getHost()
        self.client = (peer.host, peer.port)
        self.serverAddress = (host.host, host.port)
        if self.factory is not None:
            if not self.factory.admit(self):
                self._closed = True
                self._counters[self.protocolName + "Refused"] += 1
                self.transport.abortConnection()
                return
            self._pending = True
        self._clients = self._server.table.clientsOf(self.protocolName, self.serverAddress)
        self._counters[self.protocolName + "Connections"] += 1
        # Media: no Nagle delay on small ChannelData writes.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            try:
                setNoDelay(True)
            except OSError:
                pass
        self.transport.registerProducer(self, True)
        self._idleCall = self._clock.callLater(self._idleTimeout, self._checkIdle)

    @property
    def disconnected(self) -> bool:
        """
        Whether the connection is gone (an answer that comes later has nowhere to go).
        """
        return self._closed

    def _allocation(self) -> Optional[Any]:
        """
        The allocation made over this connection, if any (expired or not).
        """
        allocation = self._clients.get(self.client)
        if allocation is not None and allocation.clientTransport is self:
            return allocation
        return None

    def _liveAllocation(self) -> Optional[Any]:
        allocation = self._allocation()
        if allocation is not None and allocation.expiresAt >= self._clock.seconds():
            return allocation
        return None

    def _checkIdle(self) -> None:
        self._idleCall = None
        if self.spliced is not None:
            return  # a bound data connection lives as long as its peer connection
        if self._liveAllocation() is not None:
            self._idleCall = self._clock.callLater(self._idleTimeout, self._checkIdle)
            return
        self._counters[self.protocolName + "IdleClosed"] += 1
        _log.debug("Closing idle {protocol} connection from {client}",
                   protocol=self.protocolName, client=self.client)
        self.transport.abortConnection()

    def _settled(self) -> None:
        """
        The connection has an allocation or is a bound data connection: it no longer counts
        against the limits on connections without one, and may send messages of any size.
        """
        self._framer.maxBuffered = MAX_MESSAGE
        if self._pending:
            self._pending = False
            self.factory.release(self)

    def connectionLost(self, reason: Any = None) -> None:
        if self._pending:
            self._pending = False
            self.factory.release(self)
        if self.factory is not None:
            self.factory.forget(self)
        self._closed = True
        if self._idleCall is not None and self._idleCall.active():
            self._idleCall.cancel()
        self._idleCall = None
        if self.spliced is not None:
            self.spliced.abort()
            return
        allocation = self._allocation()
        if allocation is not None:
            self._server.deallocate(allocation)
            self._counters[self.protocolName + "ClosedWithAllocation"] += 1

    # -- input -----------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.spliced is not None:
            self.spliced.transport.write(data)
            return
        self._inDataReceived = True
        try:
            self._frame(data)
        finally:
            self._inDataReceived = False

    def _frame(self, data: bytes) -> None:
        # Before the connection has an allocation it may become an RFC 6062 data connection,
        # after which the stream is no longer framed: frame one message at a time until then,
        # so the bytes after a ConnectionBind stay as the client sent them.
        limit = 0 if self._framer.acceptChannelData else 1
        try:
            messages = self._framer.feed(data, limit)
        except FramingError as e:
            self._framingError(e)
            return
        if not messages:
            return
        # Relay writes made for a segment of many ChannelData messages leave together.
        udp.batch.begin()
        try:
            while messages:
                for message in messages:
                    if self._closed:
                        return
                    self._messageReceived(message)
                if self.spliced is not None:
                    # Bytes the client sent after its ConnectionBind, before the answer: they
                    # belong to the peer (a well-behaved client waits, RFC 6062 section 4.3).
                    leftover = self._framer.take()
                    if leftover:
                        self.spliced.transport.write(leftover)
                    return
                if not limit or self._closed:
                    return
                limit = 0 if self._framer.acceptChannelData else 1
                try:
                    messages = self._framer.feed(b"", limit)
                except FramingError as e:
                    self._framingError(e)
                    return
        finally:
            udp.batch.end()

    def _framingError(self, error: FramingError) -> None:
        self._counters["dropStreamFraming"] += 1
        _log.debug("Closing {protocol} connection from {client}: {reason}",
                   protocol=self.protocolName, client=self.client, reason=str(error))
        self.transport.abortConnection()

    def _messageReceived(self, message: bytes) -> None:
        try:
            if message[0] >= 0x40:
                allocation = self._allocation()
                if allocation is None:
                    self._counters["dropChannelNoAllocation"] += 1
                    return
                relayChannelData(
                    self._server, self._counters, allocation, message, self._clock.seconds()
                )
            else:
                self._server.handleStun(
                    message, self, self.client, self.serverAddress, self.protocolName
                )
                if not self._framer.acceptChannelData and self._allocation() is not None:
                    self._framer.acceptChannelData = True
                    self._settled()
        except Exception:
            reportInternalError(self._counters)

    def splice(self, peerConnection: Any) -> None:
        """
        Make this a data connection bound to C{peerConnection} (RFC 6062 ConnectionBind): from
        now on bytes are copied both ways unframed, and the connection lives as long as the
        peer connection.
        """
        self.spliced = peerConnection
        self._settled()
        self.transport.unregisterProducer()
        peerConnection.bound(self)
        if not self._inDataReceived:
            # Otherwise dataReceived forwards the bytes after the bind, as they came.
            leftover = self._framer.take()
            if leftover:
                peerConnection.transport.write(leftover)

    # -- output ----------------------------------------------------------------------------------

    def write(self, data: bytes, addr: Any = None) -> None:
        """
        Send one STUN or ChannelData message to this connection's client (C{addr} is the
        client's address, as for a UDP transport, and is not needed).
        """
        if self._closed:
            self._counters["dropStreamClosed"] += 1
            return
        if self._paused and (data[0] >= 0x40 or data[:2] == _DATA_INDICATION):
            # Only relayed data is dropped: responses and ConnectionAttempt indications are
            # few (one per request of the client's), and a client over TCP does not retransmit.
            self._counters["dropStreamBackpressure"] += 1
            return
        if data[0] >= 0x40:
            data += _PADDING[len(data) & 3]
        self.transport.write(data)

    # IPushProducer: the transport pauses us when its buffer is full.

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False

    def stopProducing(self) -> None:
        self._paused = True


class StreamListenerFactory(Factory):
    """
    Builds a L{StreamConnection} per accepted client connection.
    """

    noisy = False

    def __init__(
        self,
        server: Any,
        clock: Any,
        protocolName: str = "tcp",
        idleTimeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._server = server
        self._clock = clock
        self.protocolName = protocolName
        self.idleTimeout = idleTimeout
        self.maxPendingPerSource = MAX_PENDING_PER_SOURCE
        self.maxPending = MAX_PENDING
        #: Client IP to its connections without an allocation.
        self.pending: Dict[str, int] = {}
        self.pendingTotal = 0
        self.connections: Set[StreamConnection] = set()

    def buildProtocol(self, addr: Any) -> StreamConnection:
        connection = StreamConnection(
            self._server, self._clock, self.protocolName, self.idleTimeout
        )
        connection.factory = self
        return connection

    def admit(self, connection: StreamConnection) -> bool:
        """
        Count a new connection as pending, or refuse it past the limits.
        """
        host = connection.client[0]
        count = self.pending.get(host, 0)
        if count >= self.maxPendingPerSource or self.pendingTotal >= self.maxPending:
            return False
        self.pending[host] = count + 1
        self.pendingTotal += 1
        self.connections.add(connection)
        return True

    def release(self, connection: StreamConnection) -> None:
        host = connection.client[0]
        remaining = self.pending.get(host, 1) - 1
        if remaining > 0:
            self.pending[host] = remaining
        else:
            self.pending.pop(host, None)
        self.pendingTotal -= 1

    def forget(self, connection: StreamConnection) -> None:
        self.connections.discard(connection)

    def stopFactory(self) -> None:
        # The last listener using this factory stopped (the service is stopping): end the
        # client connections too, which deletes their allocations.
        for connection in list(self.connections):
            connection.transport.abortConnection()
