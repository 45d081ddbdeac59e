# -*- test-case-name: tests.test_testing -*-
"""
Public fakes for testing TURN code without sockets: a UDP transport that records writes, a relay
opener that hands out L{RelayProtocol}s on such transports, a server wired from them, and a small
long-term-credential client that drives a listener protocol.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock

from twisted_turn.auth import (
    FEATURE_PASSWORD_ALGORITHMS,
    FEATURE_USERNAME_ANONYMITY,
    Authenticator,
    NonceManager,
    PasswordAlgorithm,
    longTermKey,
)
from twisted_turn.policy import PeerPolicy
from twisted_turn.protocol import ListenerProtocol, RelayProtocol
from twisted_turn.relay import RelayPortAllocator
from twisted_turn.server import TurnServer
from twisted_turn.stun.attributes import ErrorCode, Nonce, Realm, Username
from twisted_turn.stun.message import (
    Message,
    MessageClass,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)

Address = Tuple[str, int]


class FakeUDPTransport:
    """
    Records datagrams written to it instead of sending them.

    @ivar written: C{(data, addr)} pairs in order.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 3478, sock: Any = None) -> None:
        """
        @param sock: a real (unbound) socket to expose as C{socket}, for code that sets
            socket options; it is closed by L{stopListening}.
        """
        self.host = host
        self.port = port
        self.socket = sock
        self.written: List[Tuple[bytes, Address]] = []
        self.stopped = False
        self.onStop: Any = None
        self.protocol: Any = None

    def write(self, data: bytes, addr: Address) -> None:
        self.written.append((data, addr))

    def getHost(self) -> Any:
        if ":" in self.host:
            return IPv6Address("UDP", self.host, self.port)
        return IPv4Address("UDP", self.host, self.port)

    def stopListening(self) -> None:
        self.stopped = True
        if self.socket is not None:
            self.socket.close()
        if self.onStop is not None:
            self.onStop()


class MemoryRelayFactory:
    """
    A relay opener for L{RelayPortAllocator}: each opened port is a L{RelayProtocol} on a
    L{FakeUDPTransport}.

    @ivar open: C{(host, port)} to the protocol, for ports currently open.
    @ivar busy: C{(host, port)} pairs whose bind fails with C{EADDRINUSE}.
    @ivar realSockets: give each transport a real, unbound socket of the relay's family (for
        socket options such as DONT-FRAGMENT).
    """

    def __init__(self, clock: Any, realSockets: bool = False) -> None:
        self.clock = clock
        self.realSockets = realSockets
        self.server: Any = None
        self.open: Dict[Address, RelayProtocol] = {}
        self.busy: Set[Address] = set()

    def __call__(self, host: str, port: int) -> RelayProtocol:
        if (host, port) in self.busy or (host, port) in self.open:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        protocol = RelayProtocol(self.server, self.clock)
        sock = None
        if self.realSockets:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
        transport = FakeUDPTransport(host, port, sock)
        transport.onStop = lambda: self.open.pop((host, port), None)
        protocol.makeConnection(transport)
        self.open[(host, port)] = protocol
        return protocol


class ServerFixture:
    """
    A L{TurnServer} on fakes: a L{Clock}, a listener protocol on a L{FakeUDPTransport} and
    relays from a L{MemoryRelayFactory}.
    """

    def __init__(
        self,
        users: Sequence[Tuple[str, Any]] = (("alice", "secret"),),
        authSecrets: Sequence[str] = (),
        relayHosts: Sequence[str] = ("203.0.113.10",),
        minPort: int = 50000,
        maxPort: int = 50099,
        realm: str = "example.org",
        policy: Optional[PeerPolicy] = None,
        nonceSecret: bytes = b"n" * 32,
        realSockets: bool = False,
        nonceFeatures: int = FEATURE_PASSWORD_ALGORITHMS | FEATURE_USERNAME_ANONYMITY,
        **serverOptions: Any,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.relayFactory = MemoryRelayFactory(self.clock, realSockets)
        self.relays = RelayPortAllocator(self.relayFactory, tuple(relayHosts), minPort, maxPort)
        self.realm = realm
        self.server = TurnServer(
            clock=self.clock,
            authenticator=Authenticator(realm, users=users, authSecrets=authSecrets),
            nonces=NonceManager(nonceSecret, 600, nonceFeatures),
            policy=policy
            or PeerPolicy(relayAddresses=tuple(relayHosts), relayPortOpen=self.relays.holds),
            relays=self.relays,
            realm=realm,
            **serverOptions,
        )
        self.relayFactory.server = self.server
        self.transport = FakeUDPTransport("198.51.100.1", 3478)
        self.listener = ListenerProtocol(self.server, self.clock)
        self.listener.makeConnection(self.transport)

    def client(
        self, address: Address = ("192.0.2.5", 40000), username: str = "alice",
        password: str = "secret",
    ) -> "TestClient":
        return TestClient(self.listener, self.transport, address, username, password)


class TestClient:
    """
    A long-term-credential TURN client driving a listener protocol directly and reading its
    replies from the listener's L{FakeUDPTransport}.
    """

    __test__ = False  # not a test case, whatever pytest thinks of the name

    def __init__(
        self, listener: ListenerProtocol, transport: FakeUDPTransport, address: Address,
        username: str = "alice", password: str = "secret",
    ) -> None:
        self.listener = listener
        self.transport = transport
        self.address = address
        self.username = username
        self.password = password
        self.nonce: Optional[str] = None
        self.realm: Optional[str] = None

    def send(self, data: bytes) -> None:
        self.listener.datagramReceived(data, self.address)

    def received(self) -> List[bytes]:
        """
        Everything the listener sent to this client so far, consumed.
        """
        transport = self.transport
        mine = [data for data, addr in transport.written if addr == self.address]
        transport.written = [item for item in transport.written if item[1] != self.address]
        return mine

    def lastMessage(self) -> Message:
        return decodeMessage(self.received()[-1])

    def key(self) -> bytes:
        return longTermKey(self.username, self.realm or "", self.password, PasswordAlgorithm.MD5)

    def request(
        self, method: int, attributes: Sequence[Any] = (), authenticate: bool = True,
        transactionId: Optional[bytes] = None,
    ) -> Message:
        """
        Send a request and return the decoded response, or L{None} when the server dropped it
        unanswered; with C{authenticate}, first learn a nonce from a 401 and answer a 438 once,
        as a real client does.
        """
        for _ in range(3):
            tid = transactionId or newTransactionId()
            attrs = list(attributes)
            key = None
            if authenticate and self.nonce is not None:
                attrs += [Username(self.username), Realm(self.realm), Nonce(self.nonce)]
                key = self.key()
            self.send(encodeMessage(method, MessageClass.REQUEST, tid, attrs, integrityKey=key))
            answers = self.received()
            if not answers:
                return None  # type: ignore[return-value]
            response = decodeMessage(answers[-1])
            if not authenticate or response.messageClass != MessageClass.ERROR:
                return response
            code = response.get(ErrorCode).code
            if code in (401, 438) and (code == 438 or self.nonce is None):
                self.nonce = response.get(Nonce).value
                self.realm = response.get(Realm).value
                continue
            return response
        return response


class StreamTestClient(TestClient):
    """
    A L{TestClient} over a stream: it drives a L{twisted_turn.stream.StreamConnection} on a
    L{StringTransport} and splits what the server wrote back into messages.

    @ivar stream: the connection under test.
    @ivar wire: its L{StringTransport}.
    """

    def __init__(
        self, server: Any, clock: Any, address: Address = ("192.0.2.5", 40000),
        username: str = "alice", password: str = "secret", protocolName: str = "tcp",
        serverAddress: Address = ("198.51.100.1", 3478),
    ) -> None:
        from twisted.internet.testing import StringTransport

        from twisted_turn.stream import IDLE_TIMEOUT, StreamConnection
        from twisted_turn.stun.framing import StreamFramer

        self.stream = StreamConnection(server, clock, protocolName, IDLE_TIMEOUT)
        self.wire = StringTransport(
            hostAddress=IPv4Address("TCP", *serverAddress),
            peerAddress=IPv4Address("TCP", *address),
        )
        self.stream.makeConnection(self.wire)
        self._framer = StreamFramer()
        TestClient.__init__(self, self.stream, None, address, username, password)  # type: ignore

    def send(self, data: bytes) -> None:
        self.stream.dataReceived(data)

    def receivedBytes(self) -> bytes:
        """
        The raw bytes the server wrote since the last call, consumed.
        """
        data = self.wire.value()
        self.wire.clear()
        return data

    def received(self) -> List[bytes]:
        return self._framer.feed(self.receivedBytes())


class _MemoryListeningPort:
    def __init__(self, onStop: Any, host: Any = None) -> None:
        self._onStop = onStop
        self._host = host

    def getHost(self) -> Any:
        return self._host

    def stopListening(self) -> None:
        self._onStop()


class MemoryUDPReactor(Clock):
    """
    A L{Clock} whose C{listenUDP} connects the protocol to a L{FakeUDPTransport}, enough to
    run a L{twisted_turn.service.TurnService} without sockets.

    @ivar udpPorts: C{(interface, port)} to the transport, for ports currently listening.
    @ivar busy: C{(interface, port)} pairs whose C{listenUDP} raises L{CannotListenError}.
    @ivar maxPacketSizes: C{(interface, port)} to the C{maxPacketSize} its listen asked for.
    """

    def __init__(self) -> None:
        Clock.__init__(self)
        self.udpPorts: Dict[Address, FakeUDPTransport] = {}
        self.busy: Set[Address] = set()
        self.maxPacketSizes: Dict[Address, int] = {}
        self.tcpPorts: Dict[Address, Any] = {}

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """
        Record C{factory} in L{tcpPorts}; L{busy} makes it raise as for UDP.
        """
        key = (interface, port)
        if key in self.busy or key in self.tcpPorts:
            raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "in use"))
        self.tcpPorts[key] = factory
        return _MemoryListeningPort(
            lambda: self.tcpPorts.pop(key, None),
            IPv4Address("TCP", interface or "0.0.0.0", port),
        )

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: Any, factory: Any) -> Any:
        host, port = socket.socket(fileno=os.dup(fileDescriptor)).getsockname()[:2]
        return self.listenTCP(port, factory, interface=host)

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeUDPTransport:
        key = (interface, port)
        if key in self.busy or key in self.udpPorts:
            raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "in use"))
        transport = FakeUDPTransport(interface, port)
        transport.onStop = lambda: self.udpPorts.pop(key, None)
        self.udpPorts[key] = transport
        self.maxPacketSizes[key] = maxPacketSize
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return transport
