"""
Tests for L{twisted_turn.tcprelay}: RFC 6062 relayed TCP addresses, peer connections and their
connection ids, on Twisted's memory reactor.
"""

from collections import Counter

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.tcprelay import (
    BIND_TIMEOUT,
    CONNECT_TIMEOUT,
    MAX_PENDING,
    TcpRelays,
)

PEER = ("198.51.100.7", 5555)


class FakeAllocation:
    def __init__(self, username="alice", permitted=("198.51.100.7",)):
        self.username = username
        self.expiresAt = float("inf")
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

    def acceptPeer(self, host="198.51.100.7", port=5555):
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
        self.relays.connect(self.allocation, PEER, "203.0.113.10", results.append)
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
        self.relays.connect(self.allocation, PEER, "203.0.113.10", results.append)
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
        self.relays.connect(self.allocation, ("198.51.100.8", 1), "203.0.113.10", results.append)
        self.listener.close()
        self.assertTrue(incoming.transport.disconnected)
        self.assertTrue(client.transport.disconnected)
        self.assertEqual(self.reactor.tcpServers[0][1].transport, None)
        late = self.reactor.tcpClients[0][2].buildProtocol(None)
        late.makeConnection(StringTransport())
        self.assertTrue(late.transport.disconnected)
        self.assertEqual(results, [])
