"""
Tests for L{twisted_turn.testing}: the public fakes behave like what they stand in for.
"""

import errno
import socket

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.stun.attributes import RequestedTransport
from twisted_turn.stun.message import MessageClass, Method
from twisted_turn.testing import (
    FakeUDPTransport,
    MemoryRelayFactory,
    MemoryUDPReactor,
    ServerFixture,
)


class FakeUDPTransportTests(SynchronousTestCase):
    def test_recordsWritesAndAddress(self):
        """
        Writes are recorded in order; getHost gives the family's address type.
        """
        transport = FakeUDPTransport("2001:db8::1", 3478)
        transport.write(b"a", ("::1", 1))
        transport.write(b"b", ("::1", 2))
        self.assertEqual(transport.written, [(b"a", ("::1", 1)), (b"b", ("::1", 2))])
        self.assertEqual(transport.getHost().type, "UDP")
        self.assertEqual(transport.getHost().host, "2001:db8::1")
        self.assertEqual(FakeUDPTransport().getHost().host, "127.0.0.1")

    def test_stopListeningClosesSocket(self):
        """
        stopListening marks the transport stopped, closes its socket and calls onStop.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stops = []
        transport = FakeUDPTransport(sock=sock)
        transport.onStop = lambda: stops.append(True)
        transport.stopListening()
        self.assertTrue(transport.stopped)
        self.assertEqual(sock.fileno(), -1)
        self.assertEqual(stops, [True])


class MemoryUDPReactorTests(SynchronousTestCase):
    def test_listenConnectsProtocol(self):
        """
        listenUDP connects the protocol to a recording transport; stopping frees the address.
        """
        reactor = MemoryUDPReactor()
        protocol = DatagramProtocol()
        port = reactor.listenUDP(3478, protocol, interface="192.0.2.1", maxPacketSize=9000)
        self.assertIs(protocol.transport, port)
        self.assertIs(port.protocol, protocol)
        self.assertEqual(reactor.maxPacketSizes, {("192.0.2.1", 3478): 9000})
        self.assertRaises(
            CannotListenError, reactor.listenUDP, 3478, DatagramProtocol(), "192.0.2.1"
        )
        port.stopListening()
        self.assertEqual(reactor.udpPorts, {})
        reactor.busy.add(("192.0.2.1", 3478))
        self.assertRaises(
            CannotListenError, reactor.listenUDP, 3478, DatagramProtocol(), "192.0.2.1"
        )


class MemoryRelayFactoryTests(SynchronousTestCase):
    def test_busyAndRealSockets(self):
        """
        A busy address fails with EADDRINUSE; with realSockets each transport has a socket of
        the relay's family.
        """
        factory = MemoryRelayFactory(MemoryUDPReactor(), realSockets=True)
        factory.server = ServerFixture().server
        factory.busy.add(("192.0.2.1", 5))
        error = self.assertRaises(OSError, factory, "192.0.2.1", 5)
        self.assertEqual(error.errno, errno.EADDRINUSE)
        relay = factory("::1", 6)
        self.addCleanup(relay.close)
        self.assertEqual(relay.transport.socket.family, socket.AF_INET6)
        self.assertIs(factory.open[("::1", 6)], relay)


class TestClientTests(SynchronousTestCase):
    def test_learnsNonceAndAuthenticates(self):
        """
        The test client answers the 401 challenge and its request succeeds.
        """
        fixture = ServerFixture()
        client = fixture.client()
        response = client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertEqual(client.realm, "example.org")
        self.assertIsNotNone(client.nonce)
