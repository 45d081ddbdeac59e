"""
Tests for L{twisted_turn.tcprelay}: RFC 6062 relayed TCP addresses, peer connections and their
connection ids, on Twisted's memory reactor.
"""

import socket
from collections import Counter

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn.allocation import FiveTuple
from twisted_turn.relay import RelayPortAllocator
from twisted_turn.stun.attributes import (
    AdditionalAddressFamily,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Nonce,
    Realm,
    RequestedTransport,
    Username,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.message import (
    MessageClass,
    Method,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)
from twisted_turn.testing import ServerFixture, StreamTestClient
from twisted_turn.tcprelay import (
    BIND_TIMEOUT,
    CONNECT_TIMEOUT,
    MAX_PENDING,
    TcpRelays,
)

PEER = ("8.8.8.8", 5555)
CLIENT = ("192.0.2.5", 40000)


def errorOf(response):
    error = response.get(ErrorCode)
    return None if error is None else error.code


class FakeAllocation:
    def __init__(self, username="alice", permitted=("8.8.8.8",)):
        self.username = username
        self.expiresAt = float("inf")
        self.relayAddress = ("203.0.113.10", 50000)
        self.permitted = set(permitted)
        self.relayPort = None

    def hasPermission(self, host, now):
        return host in self.permitted


class FakeClient:
    """
    A data connection: only its transport matters to the peer connection.
    """

    def __init__(self):
        self.transport = StringTransport()


class TcpRelaysTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.counters = Counter()
        self.relays = TcpRelays(self.reactor, self.counters)
        self.attempts = []
        self.relays.notifyAttempt = lambda *args: self.attempts.append(args)
        self.listener = self.relays.open("203.0.113.10", 50000)
        self.allocation = FakeAllocation()
        self.listener.attach(self.allocation)
        self.allocation.relayPort = self.listener

    def acceptPeer(self, host="8.8.8.8", port=5555):
        connection = self.listener.buildProtocol(IPv4Address("TCP", host, port))
        if connection is not None:
            connection.makeConnection(StringTransport())
        return connection

    def test_listens(self):
        """
        A relayed TCP address listens on the relay host and port, with a small backlog; a
        port that cannot be bound raises L{OSError} with its errno.
        """
        port, factory, backlog, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface, factory), (50000, "203.0.113.10", self.listener))
        self.assertLessEqual(backlog, 64)

        def refuse(*args, **kwargs):
            raise CannotListenError("203.0.113.10", 50001, OSError(98, "in use"))

        self.reactor.listenTCP = refuse
        error = self.assertRaises(OSError, self.relays.open, "203.0.113.10", 50001)
        self.assertEqual(error.errno, 98)

    def test_peerWithoutPermissionRefused(self):
        """
        A peer whose IP has no permission is refused (no protocol, so the reactor closes the
        connection), and counted; the client hears nothing.
        """
        self.assertIsNone(self.acceptPeer("192.0.2.99"))
        self.assertEqual(self.counters["tcpRelayPeerRefused"], 1)
        self.assertEqual(self.attempts, [])

    def test_peerAfterAllocationGone(self):
        """
        Once the listener is closed (its allocation deleted) peers are refused.
        """
        self.listener.close()
        self.assertIsNone(self.acceptPeer())

    def test_incomingAttemptAndBind(self):
        """
        A permitted peer gets a connection id, the client a ConnectionAttempt for it; the same
        user can bind it once, nobody else, and an unknown id binds nothing.
        """
        connection = self.acceptPeer()
        [(allocation, peer, connectionId)] = self.attempts
        self.assertEqual((allocation, peer), (self.allocation, PEER))
        self.assertEqual(connection.connectionId, connectionId)
        self.assertIsNone(self.relays.bind(connectionId, "mallory"))
        self.assertIsNone(self.relays.bind(connectionId ^ 1, "alice"))
        self.assertIs(self.relays.bind(connectionId, "alice"), connection)
        connection.bound(FakeClient())
        self.assertIsNone(self.relays.bind(connectionId, "alice"))

    def test_bindAfterExpiry(self):
        """
        A connection of an allocation that has expired (not yet swept) cannot be bound.
        """
        connection = self.acceptPeer()
        self.allocation.expiresAt = self.reactor.seconds() - 1
        self.assertIsNone(self.relays.bind(connection.connectionId, "alice"))

    def test_bindTimeout(self):
        """
        A connection not bound within L{BIND_TIMEOUT} seconds is aborted and forgotten.
        """
        connection = self.acceptPeer()
        self.reactor.advance(BIND_TIMEOUT - 1)
        self.assertFalse(connection.transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(connection.transport.disconnected)
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.relays.count(), 0)
        self.assertEqual(self.counters["tcpRelayBindTimeout"], 1)

    def test_pendingDataBoundedThenDelivered(self):
        """
        Peer data before the bind is kept, reading pauses once L{MAX_PENDING} bytes wait, and
        the bound data connection gets it all in order, then everything new.
        """
        connection = self.acceptPeer()
        connection.dataReceived(b"a" * (MAX_PENDING - 1))
        self.assertEqual(connection.transport.producerState, "producing")
        connection.dataReceived(b"bc")
        self.assertEqual(connection.transport.producerState, "paused")
        client = FakeClient()
        connection.bound(client)
        self.assertEqual(connection.transport.producerState, "producing")
        connection.dataReceived(b"later")
        self.assertEqual(client.transport.value(), b"a" * (MAX_PENDING - 1) + b"bclater")

    def test_boundBackPressure(self):
        """
        Once bound, each side's transport is registered as the other's streaming producer, so
        a full buffer on one side pauses reading on the other.
        """
        connection = self.acceptPeer()
        client = FakeClient()
        connection.bound(client)
        self.assertIs(client.transport.producer, connection.transport)
        self.assertIs(connection.transport.producer, client.transport)
        self.assertTrue(client.transport.streaming and connection.transport.streaming)

    def test_peerCloseClosesDataConnection(self):
        """
        When the peer closes, the bound data connection is closed and the id forgotten.
        """
        connection = self.acceptPeer()
        client = FakeClient()
        connection.bound(client)
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(self.relays.count(), 0)

    def test_connect(self):
        """
        Connect goes out from the relay host (any port) with a timeout; once connected, the
        connection gets an id, is found by L{TcpRelays.connectionTo} and can be bound.
        """
        results = []
        self.relays.connect(self.allocation, PEER, ("203.0.113.10", 50000), results.append)
        host, port, factory, timeout, bindAddress = self.reactor.tcpClients[0]
        self.assertEqual(((host, port), timeout, bindAddress),
                         (PEER, CONNECT_TIMEOUT, ("203.0.113.10", 0)))
        self.assertIsNotNone(self.relays.connectionTo(self.allocation, PEER))
        connection = factory.buildProtocol(None)
        connection.makeConnection(StringTransport())
        [connectionId] = results
        self.assertIs(self.relays.bind(connectionId, "alice"), connection)
        self.assertIs(self.relays.connectionTo(self.allocation, PEER), connection)

    def test_connectFails(self):
        """
        A failed connect reports L{None} and leaves nothing behind.
        """
        results = []
        self.relays.connect(self.allocation, PEER, ("203.0.113.10", 50000), results.append)
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionDone()))
        self.assertEqual(results, [None])
        self.assertIsNone(self.relays.connectionTo(self.allocation, PEER))
        self.assertEqual(self.counters["tcpRelayConnectFailed"], 1)

    def test_closeAllocation(self):
        """
        Closing the relayed address ends every connection of the allocation, their data
        connections, and connects still in progress (they are dropped when they complete).
        """
        incoming = self.acceptPeer()
        client = FakeClient()
        incoming.bound(client)
        results = []
        self.relays.connect(
            self.allocation, ("8.8.4.4", 1), ("203.0.113.10", 50000), results.append
        )
        self.listener.close()
        self.assertTrue(incoming.transport.disconnected)
        self.assertTrue(client.transport.disconnected)
        self.assertEqual(self.reactor.tcpServers[0][1].transport, None)
        late = self.reactor.tcpClients[0][2].buildProtocol(None)
        late.makeConnection(StringTransport())
        self.assertTrue(late.transport.disconnected)
        self.assertEqual(results, [])


class TcpRelayServerTests(SynchronousTestCase):
    """
    The server's RFC 6062 methods over a stream client, with the real L{TcpRelays} on a memory
    reactor.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.relays = TcpRelays(self.reactor, Counter())
        self.ports = RelayPortAllocator(self.relays.open, ("203.0.113.10",), 50100, 50199)
        self.fixture = ServerFixture(
            users=(("alice", "secret"), ("bob", "builder")),
            tcpRelays=self.relays, tcpRelayPorts=self.ports,
        )
        self.server = self.fixture.server
        self.relays.counters = self.server.counters
        self.reactor.advance(self.fixture.clock.seconds())
        self.client = StreamTestClient(self.server, self.fixture.clock, CLIENT)

    def allocate(self, client=None):
        client = client or self.client
        response = client.request(Method.ALLOCATE, [RequestedTransport(6)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, errorOf(response))
        return self.server.table.get(FiveTuple(*client.address, "198.51.100.1", 3478, "tcp"))

    def permit(self, host=PEER[0]):
        response = self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(host, 1)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, errorOf(response))

    def connectPeer(self, peer=PEER):
        """
        Send Connect, let the memory reactor's connection succeed, return the response.
        """
        before = len(self.reactor.tcpClients)
        self.client.send(encodeMessage(
            Method.CONNECT, MessageClass.REQUEST, newTransactionId(),
            [XorPeerAddress(*peer), *self.credentials()], integrityKey=self.client.key(),
        ))
        if len(self.reactor.tcpClients) > before:
            factory = self.reactor.tcpClients[-1][2]
            factory.buildProtocol(None).makeConnection(StringTransport())
        return decodeMessage(self.client.received()[-1])

    def credentials(self, client=None):
        client = client or self.client
        return [Username(client.username), Realm(client.realm), Nonce(client.nonce)]

    def test_allocateTcp(self):
        """
        REQUESTED-TRANSPORT TCP over a stream gives an allocation whose relayed address is a
        TCP socket listening in the relay range.
        """
        allocation = self.allocate()
        self.assertTrue(allocation.tcp)
        [(port, factory, _, interface)] = self.reactor.tcpServers
        self.assertEqual((interface, port), allocation.relayAddress)
        self.assertIs(factory.allocation, allocation)
        self.assertEqual(self.server.counters["tcpAllocations"], 1)

    def test_allocateTcpRules(self):
        """
        A TCP relay over UDP, or with EVEN-PORT, DONT-FRAGMENT or ADDITIONAL-ADDRESS-FAMILY,
        gets 400; a server without TCP relays answers 442.
        """
        udp = self.fixture.client()
        self.assertEqual(errorOf(udp.request(Method.ALLOCATE, [RequestedTransport(6)])), 400)
        for extra in (EvenPort(False), DontFragment(), AdditionalAddressFamily(2)):
            response = self.client.request(Method.ALLOCATE, [RequestedTransport(6), extra])
            self.assertEqual(errorOf(response), 400, extra)
        plain = ServerFixture()
        stream = StreamTestClient(plain.server, plain.clock, CLIENT)
        self.assertEqual(
            errorOf(stream.request(Method.ALLOCATE, [RequestedTransport(6)])), 442
        )

    def test_noChannelsNoSend(self):
        """
        A TCP allocation has no channels (400) and drops Send indications.
        """
        self.allocate()
        self.permit()
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)]
        )
        self.assertEqual(errorOf(response), 400)
        self.client.send(encodeMessage(
            Method.SEND, MessageClass.INDICATION, newTransactionId(),
            [XorPeerAddress(*PEER), Data(b"x")],
        ))
        self.assertEqual(self.server.counters["dropSendTcpAllocation"], 1)

    def test_connect(self):
        """
        Connect goes out from the relay host to the peer; its success response carries the
        CONNECTION-ID; a second Connect to the same peer gets 446.
        """
        self.allocate()
        response = self.connectPeer()
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, errorOf(response))
        host, port, _, _, bindAddress = self.reactor.tcpClients[0]
        self.assertEqual(((host, port), bindAddress), (PEER, ("203.0.113.10", 0)))
        self.assertIsNotNone(self.relays.bind(response.get(ConnectionId).value, "alice"))
        self.assertEqual(errorOf(self.connectPeer()), 446)

    def test_connectRefused(self):
        """
        Connect to a denied peer gets 403, to another family 443, and a failed connection 447.
        """
        self.allocate()
        self.assertEqual(errorOf(self.connectPeer(("127.0.0.1", 80))), 403)
        self.assertEqual(errorOf(self.connectPeer(("2001:4860::1", 80))), 443)
        self.client.send(encodeMessage(
            Method.CONNECT, MessageClass.REQUEST, newTransactionId(),
            [XorPeerAddress(*PEER), *self.credentials()], integrityKey=self.client.key(),
        ))
        self.reactor.tcpClients[-1][2].clientConnectionFailed(None, None)
        self.assertEqual(errorOf(decodeMessage(self.client.received()[-1])), 447)

    def test_connectionBind(self):
        """
        A second connection binds to the connection id with the same credentials; the answer
        is a success and the connection is spliced to the peer.  Another user, an unknown id,
        or the control connection itself get 400.
        """
        self.allocate()
        connectionId = self.connectPeer().get(ConnectionId).value
        self.assertEqual(
            errorOf(self.client.request(Method.CONNECTION_BIND, [ConnectionId(connectionId)])),
            400,
        )
        other = StreamTestClient(
            self.server, self.fixture.clock, ("192.0.2.5", 40001), "bob", "builder"
        )
        self.assertEqual(
            errorOf(other.request(Method.CONNECTION_BIND, [ConnectionId(connectionId)])), 400
        )
        data = StreamTestClient(self.server, self.fixture.clock, ("192.0.2.5", 40002))
        self.assertEqual(
            errorOf(data.request(Method.CONNECTION_BIND, [ConnectionId(connectionId ^ 1)])), 400
        )
        response = data.request(Method.CONNECTION_BIND, [ConnectionId(connectionId)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, errorOf(response))
        self.assertIsNotNone(data.stream.spliced)
        self.assertEqual(data.stream.spliced.connectionId, connectionId)

    def test_connectionAttempt(self):
        """
        A peer with a permission that connects to the relayed address is announced to the
        client with a ConnectionAttempt indication carrying its address and a connection id.
        """
        allocation = self.allocate()
        self.permit()
        listener = allocation.relayPort
        connection = listener.buildProtocol(IPv4Address("TCP", *PEER))
        connection.makeConnection(StringTransport())
        [indication] = [decodeMessage(m) for m in self.client.received()]
        self.assertEqual(
            (indication.method, indication.messageClass),
            (Method.CONNECTION_ATTEMPT, MessageClass.INDICATION),
        )
        self.assertEqual(indication.get(XorPeerAddress), XorPeerAddress(*PEER))
        self.assertEqual(indication.get(ConnectionId).value, connection.connectionId)

    def test_controlConnectionLoss(self):
        """
        Losing the control connection deletes the allocation, stops the relayed address and
        aborts its peer connections.
        """
        allocation = self.allocate()
        self.permit()
        peer = allocation.relayPort.buildProtocol(IPv4Address("TCP", *PEER))
        peer.makeConnection(StringTransport())
        self.client.stream.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.server.table), 0)
        self.assertTrue(peer.transport.disconnected)
        self.assertFalse(self.ports.holds(*allocation.relayAddress))

    def test_connectionCap(self):
        """
        Past C{maxConnections} peer connections an allocation's Connect gets 508 and peers
        connecting in are refused.
        """
        allocation = self.allocate()
        self.permit()
        self.relays.maxConnections = 1
        self.assertEqual(self.connectPeer().messageClass, MessageClass.SUCCESS)
        self.assertEqual(errorOf(self.connectPeer(("8.8.4.4", 1))), 508)
        self.assertIsNone(allocation.relayPort.buildProtocol(IPv4Address("TCP", *PEER)))

    def test_connectToOwnRelayPorts(self):
        """
        Connect reaches the server's own relay address only on the port of a TCP relay: a port
        held by a UDP relay socket gets 403, so a TCP service listening there stays out of
        reach.
        """
        self.server._policy._tcpRelayPortOpen = self.ports.holds
        udpAllocation = self.fixture.client(("192.0.2.9", 9)).request(
            Method.ALLOCATE, [RequestedTransport(17)]
        )
        udpPort = udpAllocation.get(XorRelayedAddress).port
        other = StreamTestClient(self.server, self.fixture.clock, ("192.0.2.5", 40003))
        tcpTarget = self.allocate(other).relayAddress
        self.allocate()
        self.assertEqual(errorOf(self.connectPeer(("203.0.113.10", udpPort))), 403)
        response = self.connectPeer(tcpTarget)
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, errorOf(response))


class SameSourcePortTests(SynchronousTestCase):
    """
    On a real reactor (never run here) relayed addresses listen with SO_REUSEPORT and
    connections to peers bind the relayed address itself (RFC 6062 section 5.2).
    """

    def setUp(self):
        if not hasattr(socket, "SO_REUSEPORT"):
            raise SkipTest("no SO_REUSEPORT on this system")
        from twisted.internet.selectreactor import SelectReactor

        self.reactor = SelectReactor()
        self.relays = TcpRelays(self.reactor, Counter())

    def test_connectionLeavesFromRelayedPort(self):
        """
        The listening socket has SO_REUSEPORT, and a Connect's socket is bound to the same
        address and port before it connects; deleting the allocation stops the attempt.
        """
        self.assertTrue(self.relays.sameSourcePort)
        listener = self.relays.open("127.0.0.1", 0)
        relayed = ("127.0.0.1", listener.transport.getHost().port)
        self.assertTrue(
            listener.transport.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        )
        allocation = FakeAllocation()
        listener.attach(allocation)
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            self.relays.connect(allocation, server.getsockname(), relayed, self.fail)
            [connection] = self.relays._connecting[id(allocation)]
            self.assertEqual(connection.connector.transport.socket.getsockname(), relayed)
            listener.close()
        self.assertEqual(connection.connector.state, "disconnected")
        self.assertEqual(self.relays._connecting, {})
        for call in self.reactor.getDelayedCalls():
            call.cancel()

    def test_memoryReactorFallsBack(self):
        """
        A reactor without real sockets (a test's memory reactor) gets the plain calls.
        """
        self.assertFalse(TcpRelays(MemoryReactorClock(), Counter()).sameSourcePort)

