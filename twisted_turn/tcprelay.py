# -*- test-case-name: tests.test_tcprelay -*-
"""
TCP relays (RFC 6062): an allocation whose relayed transport address is a TCP listening socket,
and the connections between peers and the client's data connections.

The pieces:
  - L{TcpRelayListener}: the relayed transport address of one allocation (a listening TCP
    socket), the relay handle L{twisted_turn.relay.RelayPortAllocator} hands out.  A peer that
    connects to it is accepted only if the allocation has a permission for the peer's IP; the
    client then gets a ConnectionAttempt indication on its control connection.
  - L{PeerConnection}: one TCP connection between the relay and a peer, made by a Connect
    request (outgoing) or accepted by the listener (incoming).  It has a connection id and waits
    at most L{BIND_TIMEOUT} seconds for the client's ConnectionBind, keeping at most
    L{MAX_PENDING} bytes from the peer meanwhile (reading is paused past that).
  - L{TcpRelays}: the registry of connection ids and the outgoing connects.

Once a data connection is bound (L{twisted_turn.stream.StreamConnection.splice}), bytes are
copied both ways with back-pressure: each side's transport is the other side's producer.
"""

from __future__ import annotations

import secrets
import socket
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import tcp
from twisted.internet.error import CannotListenError
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from twisted_turn._log import makeLogger

_log = makeLogger(__name__)

#: RFC 6062 section 5.2 and 5.3: seconds a connection waits for its ConnectionBind.
BIND_TIMEOUT = 30.0

#: Seconds an outgoing connection to a peer may take before the Connect gets 447.
CONNECT_TIMEOUT = 30.0

#: Bytes from a peer kept until the client binds a data connection; past it, reading pauses.
MAX_PENDING = 65536

#: Pending connections per relayed TCP address.
RELAY_BACKLOG = 16

#: Most peer connections (made, being made, bound or not) one allocation may have at once:
#: each can hold L{MAX_PENDING} bytes, so this bounds what one client costs.
MAX_CONNECTIONS = 256


def _reusePort(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class _RelayedPort(tcp.Port):
    """
    The listening socket of a relayed TCP address, with C{SO_REUSEPORT}, so that connections to
    peers can leave from the same address and port (RFC 6062 section 5.2).  Its close is not
    logged: one opens and closes per TCP allocation.
    """

    def createInternetSocket(self) -> socket.socket:
        return _reusePort(tcp.Port.createInternetSocket(self))

    def _logConnectionLostMsg(self) -> None:
        pass


class _RelayedClient(tcp.Client):
    def createInternetSocket(self) -> socket.socket:
        return _reusePort(tcp.Client.createInternetSocket(self))


class _RelayedConnector(tcp.Connector):
    """
    Connects from a relayed address: the client socket gets C{SO_REUSEPORT} before it binds.
    """

    def _makeTransport(self) -> tcp.Client:
        return _RelayedClient(self.host, self.port, self.bindAddress, self, self.reactor)


class PeerConnection(Protocol):
    """
    The relay's TCP connection with one peer.

    @ivar connectionId: the CONNECTION-ID the client binds with.
    @ivar peer: the peer's C{(host, port)}.
    @ivar client: the bound data connection (a L{twisted_turn.stream.StreamConnection}), or
        L{None} until ConnectionBind.
    """

    def __init__(self, relays: "TcpRelays", allocation: Any, peer: Any) -> None:
        self._relays = relays
        self.allocation = allocation
        self.peer = peer
        self.connectionId: Optional[int] = None
        self.client: Any = None
        self.pending: List[bytes] = []
        self.pendingBytes = 0
        self.closed = False
        self._bindTimer: Any = None
        self.onConnected: Optional[Callable[["PeerConnection"], None]] = None
        #: The connector of an outgoing connection (C{IConnector}), or L{None}.
        self.connector: Any = None

    def connectionMade(self) -> None:
        if self.onConnected is not None:
            self.onConnected(self)

    def waitForBind(self, clock: Any) -> None:
        self._bindTimer = clock.callLater(BIND_TIMEOUT, self._bindTimedOut)

    def _bindTimedOut(self) -> None:
        self._bindTimer = None
        self._relays.counters["tcpRelayBindTimeout"] += 1
        self.abort()

    def bound(self, client: Any) -> None:
        """
        The client's data connection C{client} is bound: hand it what came before and copy
        bytes both ways from now on.
        """
        if self._bindTimer is not None and self._bindTimer.active():
            self._bindTimer.cancel()
        self._bindTimer = None
        self.client = client
        pending, self.pending, self.pendingBytes = self.pending, [], 0
        for data in pending:
            client.transport.write(data)
        # Each transport pauses the other side when its buffer is full.
        client.transport.registerProducer(self.transport, True)
        self.transport.registerProducer(client.transport, True)
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.client is not None:
            self.client.transport.write(data)
            return
        self.pending.append(data)
        self.pendingBytes += len(data)
        if self.pendingBytes >= MAX_PENDING:
            self.transport.pauseProducing()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        if self._bindTimer is not None and self._bindTimer.active():
            self._bindTimer.cancel()
        self._bindTimer = None
        self._relays.forget(self)
        if self.client is not None:
            self.client.transport.loseConnection()


class _ConnectFactory(ClientFactory):
    noisy = False

    def __init__(self, connection: PeerConnection, onFailed: Callable[[], None]) -> None:
        self._connection = connection
        self._onFailed = onFailed

    def buildProtocol(self, addr: Any) -> PeerConnection:
        return self._connection

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self._onFailed()


class TcpRelayListener(Factory):
    """
    The relayed transport address of one TCP allocation: a listening socket, and the relay
    handle of L{twisted_turn.relay.RelayPortAllocator} (C{transport}, C{attach}, C{close},
    C{setDontFragment}).
    """

    noisy = False

    def __init__(self, relays: "TcpRelays") -> None:
        self._relays = relays
        self.allocation: Any = None
        self.transport: Any = None

    def attach(self, allocation: Any) -> None:
        self.allocation = allocation

    def setDontFragment(self) -> bool:
        return False

    def close(self) -> None:
        """
        Stop listening and end every connection of the allocation (it is being deleted).
        """
        allocation, self.allocation = self.allocation, None
        if self.transport is not None:
            self.transport.stopListening()
            self.transport = None
        if allocation is not None:
            self._relays.closeAllocation(allocation)

    def buildProtocol(self, addr: Any) -> Optional[PeerConnection]:
        allocation = self.allocation
        now = self._relays.clock.seconds()
        if (
            allocation is None
            or allocation.expiresAt < now
            or not allocation.hasPermission(addr.host, now)
            or self._relays.connectionCount(allocation) >= self._relays.maxConnections
        ):
            # RFC 6062 section 5.3: no permission, no connection (nor past the cap).
            self._relays.counters["tcpRelayPeerRefused"] += 1
            return None
        connection = PeerConnection(self._relays, allocation, (addr.host, addr.port))
        connection.onConnected = self._relays.incoming
        return connection


class TcpRelays:
    """
    The connections of every TCP allocation, by connection id.

    @ivar notifyAttempt: C{notifyAttempt(allocation, peer, connectionId)}: tell the client of
        an incoming connection (the server sends the ConnectionAttempt indication).
    """

    def __init__(self, reactor: Any, counters: Any) -> None:
        self._reactor = reactor
        self.clock = reactor
        # Connections leave from the relayed address itself where the reactor runs real sockets
        # and the system has SO_REUSEPORT (Linux, the BSDs); elsewhere from the relay host on a
        # port of the kernel's choice.
        self.sameSourcePort = hasattr(socket, "SO_REUSEPORT") and isinstance(
            reactor, PosixReactorBase
        )
        self.counters = counters
        self._byId: Dict[int, PeerConnection] = {}
        self._byAllocation: Dict[int, Dict[int, PeerConnection]] = {}
        # Outgoing connections not connected yet, by allocation.
        self._connecting: Dict[int, List[PeerConnection]] = {}
        self.notifyAttempt: Callable[[Any, Any, int], None] = lambda *args: None
        self.maxConnections = MAX_CONNECTIONS

    # -- relayed addresses --------------------------------------------------------------------

    def open(self, host: str, port: int) -> TcpRelayListener:
        """
        Listen on C{host:port} for peers: the opener of a TCP
        L{twisted_turn.relay.RelayPortAllocator}.

        @raise OSError: the port cannot be bound (with its errno).
        """
        listener = TcpRelayListener(self)
        try:
            if self.sameSourcePort:
                relayed = _RelayedPort(port, listener, RELAY_BACKLOG, host, self._reactor)
                relayed.startListening()
                listener.transport = relayed
            else:
                listener.transport = self._reactor.listenTCP(
                    port, listener, backlog=RELAY_BACKLOG, interface=host
                )
        except CannotListenError as e:
            raise OSError(getattr(e.socketError, "errno", None), str(e)) from e
        return listener

    # -- connection ids -----------------------------------------------------------------------

    def _register(self, connection: PeerConnection) -> int:
        while True:
            connectionId = secrets.randbits(32)
            if connectionId not in self._byId:
                break
        connection.connectionId = connectionId
        self._byId[connectionId] = connection
        self._byAllocation.setdefault(id(connection.allocation), {})[connectionId] = connection
        connection.waitForBind(self.clock)
        return connectionId

    def forget(self, connection: PeerConnection) -> None:
        if connection.connectionId is None:
            return
        self._byId.pop(connection.connectionId, None)
        mine = self._byAllocation.get(id(connection.allocation))
        if mine is not None:
            mine.pop(connection.connectionId, None)
            if not mine:
                del self._byAllocation[id(connection.allocation)]

    def connectionTo(self, allocation: Any, peer: Any) -> Optional[PeerConnection]:
        """
        The allocation's connection with C{peer}, made or being made (for 446).
        """
        for connection in self._byAllocation.get(id(allocation), {}).values():
            if connection.peer == peer:
                return connection
        for connection in self._connecting.get(id(allocation), ()):
            if connection.peer == peer:
                return connection
        return None

    def closeAllocation(self, allocation: Any) -> None:
        for connection in list(self._byAllocation.get(id(allocation), {}).values()):
            connection.abort()
            if connection.client is not None:
                connection.client.transport.abortConnection()
        for connection in self._connecting.pop(id(allocation), ()):
            # Its callbacks find it off the connecting list and do nothing more.
            connection.closed = True
            if connection.connector is not None:
                connection.connector.stopConnecting()

    def count(self) -> int:
        return len(self._byId)

    def connectionCount(self, allocation: Any) -> int:
        """
        The allocation's peer connections, those being made included.
        """
        key = id(allocation)
        return len(self._byAllocation.get(key, ())) + len(self._connecting.get(key, ()))

    # -- incoming and outgoing ----------------------------------------------------------------

    def incoming(self, connection: PeerConnection) -> None:
        """
        A peer connected to a relayed address: give it an id and tell the client.
        """
        connectionId = self._register(connection)
        self.counters["tcpRelayIncoming"] += 1
        _log.debug("TCP relay {relay}: peer {peer} connected (connection {connectionId})",
                   relay=connection.allocation.relayAddress, peer=connection.peer,
                   connectionId=connectionId)
        try:
            self.notifyAttempt(connection.allocation, connection.peer, connectionId)
        except Exception:
            _log.failure("Sending a ConnectionAttempt indication failed")

    def connect(
        self,
        allocation: Any,
        peer: Any,
        relayed: Tuple[str, int],
        done: Callable[[Optional[int]], None],
    ) -> None:
        """
        Connect from the relayed address C{relayed} to C{peer}; call C{done(connectionId)} once
        connected, or C{done(None)} when the connection fails or takes over
        L{CONNECT_TIMEOUT}.

        The connection leaves from the relayed address and port (RFC 6062 section 5.2): both
        it and the listening socket there have C{SO_REUSEPORT}.  Without L{sameSourcePort} it
        leaves from the relay host on a port of the kernel's choice.
        """
        connection = PeerConnection(self, allocation, peer)
        self._connecting.setdefault(id(allocation), []).append(connection)

        def stopWaiting() -> bool:
            """
            Take C{connection} off the connecting list; C{False} if the allocation went away.
            """
            waiting = self._connecting.get(id(allocation), [])
            if connection not in waiting:
                return False
            waiting.remove(connection)
            if not waiting:
                del self._connecting[id(allocation)]
            return True

        def connected(connection: PeerConnection) -> None:
            if not stopWaiting():
                connection.transport.abortConnection()
                return
            self.counters["tcpRelayConnected"] += 1
            done(self._register(connection))

        def failed() -> None:
            if not stopWaiting():
                return  # the allocation went away and stopped the attempt
            self.counters["tcpRelayConnectFailed"] += 1
            done(None)

        connection.onConnected = connected
        factory = _ConnectFactory(connection, failed)
        if self.sameSourcePort:
            connector = _RelayedConnector(
                peer[0], peer[1], factory, CONNECT_TIMEOUT, relayed, self._reactor
            )
            connector.connect()
        else:
            connector = self._reactor.connectTCP(
                peer[0], peer[1], factory, timeout=CONNECT_TIMEOUT, bindAddress=(relayed[0], 0)
            )
        connection.connector = connector

    def bind(self, connectionId: int, username: Optional[str]) -> Optional[PeerConnection]:
        """
        The connection C{connectionId} for a ConnectionBind by C{username}; L{None} if it is
        unknown, already bound, another user's, or its allocation has expired.
        """
        connection = self._byId.get(connectionId)
        if (
            connection is None
            or connection.client is not None
            or connection.closed
            or connection.allocation.username != username
            or connection.allocation.expiresAt < self.clock.seconds()
        ):
            return None
        return connection
