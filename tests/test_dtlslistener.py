"""
Tests for L{twisted_turn.dtlslistener}: TURN over DTLS, driven by a real pyOpenSSL DTLS client on
memory BIOs.
"""

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.allocation import FiveTuple
from twisted_turn.dtls import makeDtlsContext
from twisted_turn.dtlslistener import DtlsListenerProtocol
from twisted_turn.stream import IDLE_TIMEOUT
from twisted_turn.stun.attributes import (
    ChannelNumber,
    Lifetime,
    RequestedTransport,
    XorMappedAddress,
    XorPeerAddress,
)
from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.message import MessageClass, Method
from twisted_turn.testing import FakeUDPTransport, ServerFixture, TestClient
from tests.integration.harness import writeCertificate
from tests.test_dtls import Client

CLIENT = ("192.0.2.5", 40000)
PEER = ("8.8.8.8", 6000)


class DtlsTestClient(TestClient):
    """
    A long-term-credential TURN client whose messages travel as DTLS records.
    """

    __test__ = False

    def __init__(self, protocol, transport, address):
        TestClient.__init__(self, protocol, transport, address)
        self.dtls = Client(address)
        self.pump()

    def pump(self):
        for _ in range(20):
            moved = False
            data = self.dtls.output()
            if data:
                moved = True
                self.listener.datagramReceived(data, self.address)
            mine = [d for d, addr in self.transport.written if addr == self.address]
            self.transport.written = [
                item for item in self.transport.written if item[1] != self.address
            ]
            for datagram in mine:
                moved = True
                self.dtls.input(datagram)
            if not moved:
                return

    def send(self, data):
        self.listener.datagramReceived(self.dtls.send(data), self.address)
        self.pump()

    def received(self):
        self.pump()
        messages, self.dtls.received = self.dtls.received, []
        return messages


class DtlsListenerTests(SynchronousTestCase):
    def setUp(self):
        certFile, keyFile, _ = writeCertificate(self.mktemp(), "server")
        self.context = makeDtlsContext(certFile, keyFile)
        self.fixture = ServerFixture()
        self.server = self.fixture.server
        self.clock = self.fixture.clock
        self.transport = FakeUDPTransport("198.51.100.1", 5349)
        self.protocol = DtlsListenerProtocol(self.server, self.clock, lambda: self.context)
        self.protocol.makeConnection(self.transport)
        self.client = DtlsTestClient(self.protocol, self.transport, CLIENT)

    def allocate(self):
        response = self.client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        allocation = self.server.table.get(FiveTuple(*CLIENT, "198.51.100.1", 5349, "dtls"))
        self.assertIsNotNone(allocation)
        return allocation

    def test_bindingOverDtls(self):
        """
        After the handshake (with its cookie exchange), a Binding request in a DTLS record is
        answered in a DTLS record with the client's address.
        """
        self.assertTrue(self.client.dtls.established)
        response = self.client.request(Method.BINDING, authenticate=False)
        self.assertEqual(response.get(XorMappedAddress), XorMappedAddress(*CLIENT))
        self.assertEqual(self.protocol.dtls.counters["cookieSent"], 1)

    def test_allocationOverDtls(self):
        """
        An allocation made over DTLS has transport C{dtls} in its 5-tuple and the DTLS server as
        the transport its replies and peer data go out on.
        """
        allocation = self.allocate()
        self.assertIs(allocation.clientTransport, self.protocol.dtls)

    def test_relayBothWays(self):
        """
        ChannelData in a record goes to the peer; peer data comes back as ChannelData in a
        record.
        """
        allocation = self.allocate()
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.client.send(encodeChannelData(0x4000, b"up", pad=True))
        self.assertEqual(relay.transport.written, [(b"up", PEER)])
        relay.datagramReceived(b"down", PEER)
        self.assertEqual(self.client.received(), [encodeChannelData(0x4000, b"down")])

    def test_sessionEndDeletesAllocation(self):
        """
        When the client closes its DTLS session (close_notify), its allocation is deleted.
        """
        self.allocate()
        try:
            self.client.dtls.connection.shutdown()
        except Exception:
            pass
        self.client.pump()
        self.assertEqual(len(self.server.table), 0)
        self.assertEqual(self.server.counters["dtlsClosedWithAllocation"], 1)

    def test_idleSessionClosed(self):
        """
        A session without an allocation is closed after two idle checks; one with an
        allocation stays until the allocation is gone.
        """
        other = DtlsTestClient(self.protocol, self.transport, ("192.0.2.6", 1))
        self.allocate()
        self.clock.advance(IDLE_TIMEOUT)
        self.assertEqual(self.protocol.dtls.sessions, 2)
        self.clock.advance(IDLE_TIMEOUT)
        self.assertFalse(self.protocol.dtls.established(other.address))
        self.assertTrue(self.protocol.dtls.established(CLIENT))
        self.client.request(Method.REFRESH, [Lifetime(0)])
        self.clock.advance(IDLE_TIMEOUT)
        self.clock.advance(IDLE_TIMEOUT)
        self.assertEqual(self.protocol.dtls.sessions, 0)
        self.assertEqual(self.server.counters["dtlsIdleClosed"], 2)

    def test_garbageDropped(self):
        """
        Bytes that are not DTLS are dropped by the DTLS layer without an exception; a
        decrypted record that is neither STUN nor ChannelData is counted.
        """
        self.protocol.datagramReceived(b"\x00\x01garbage", ("192.0.2.9", 9))
        self.client.send(b"\xff" * 8)
        self.assertEqual(self.server.counters["dropNotStun"], 1)

    def test_stopCancelsTimers(self):
        """
        Stopping the protocol stops its timers and closes every session.
        """
        self.protocol.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.protocol.dtls.sessions, 0)
