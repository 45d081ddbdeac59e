"""
Tests for L{twisted_turn.stream}: STUN and ChannelData over a TCP or TLS connection.
"""

from hypothesis import given, settings, strategies as st
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.allocation import FiveTuple
from twisted_turn.stream import (
    IDLE_TIMEOUT,
    PRE_ALLOCATION_BUFFER,
    StreamConnection,
    StreamListenerFactory,
)
from twisted_turn.stun.attributes import (
    ChannelNumber,
    Data,
    Lifetime,
    RequestedTransport,
    XorMappedAddress,
    XorPeerAddress,
)
from twisted_turn.stun.channeldata import decodeChannelData, encodeChannelData
from twisted_turn.stun.framing import MAX_MESSAGE
from twisted_turn.stun.message import (
    MessageClass,
    Method,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)
from twisted_turn.testing import ServerFixture, StreamTestClient

PEER = ("8.8.8.8", 6000)
CLIENT = ("192.0.2.5", 40000)


def binding():
    return encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), [])


class StreamConnectionTests(SynchronousTestCase):
    def setUp(self):
        self.fixture = ServerFixture()
        self.server = self.fixture.server
        self.clock = self.fixture.clock
        self.client = StreamTestClient(self.server, self.clock, CLIENT)
        self.stream = self.client.stream
        self.wire = self.client.wire

    def allocate(self):
        response = self.client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        allocation = self.server.table.get(FiveTuple(*CLIENT, "198.51.100.1", 3478, "tcp"))
        self.assertIsNotNone(allocation)
        return allocation

    def bind(self, number=0x4000, peer=PEER):
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress(*peer)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)

    def test_bindingAcrossSegments(self):
        """
        A Binding request split over three segments gets one response, with the client's
        address as seen on the connection.
        """
        request = binding()
        for chunk in (request[:3], request[3:21], request[21:]):
            self.stream.dataReceived(chunk)
        [response] = self.client.received()
        message = decodeMessage(response)
        self.assertEqual(message.messageClass, MessageClass.SUCCESS)
        self.assertEqual(message.get(XorMappedAddress), XorMappedAddress(*CLIENT))

    def test_manyMessagesInOneSegment(self):
        """
        Several messages in one segment are each answered, in order.
        """
        requests = [binding() for _ in range(3)]
        self.stream.dataReceived(b"".join(requests))
        responses = [decodeMessage(data) for data in self.client.received()]
        self.assertEqual(
            [r.transactionId for r in responses], [decodeMessage(r).transactionId for r in requests]
        )

    def test_allocationKeyedByTcp(self):
        """
        An allocation made over the connection has a 5-tuple with transport C{tcp}, is not
        found from a UDP client with the same address, and its replies go out on the stream.
        """
        allocation = self.allocate()
        self.assertIs(allocation.clientTransport, self.stream)
        self.assertIsNone(self.server.table.get(FiveTuple(*CLIENT, "198.51.100.1", 3478)))

    def test_channelDataUplink(self):
        """
        Padded ChannelData messages in one segment go to the peer without header or padding.
        """
        allocation = self.allocate()
        self.bind()
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.stream.dataReceived(
            b"".join(encodeChannelData(0x4000, payload, pad=True)
                     for payload in (b"a", b"bb", b"ccc", b"dddd"))
        )
        self.assertEqual(
            relay.transport.written, [(p, PEER) for p in (b"a", b"bb", b"ccc", b"dddd")]
        )

    def test_channelDataBeforeAllocationCloses(self):
        """
        A ChannelData header before the connection has an allocation closes it at once (an
        HTTP C{GET} looks like one), without waiting for the length it announces.
        """
        self.stream.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertTrue(self.wire.disconnected)
        self.assertEqual(self.server.counters["dropStreamFraming"], 1)

    def test_channelDataUnbound(self):
        """
        ChannelData on an unbound channel, or after the allocation was deleted, is dropped and
        counted.
        """
        self.allocate()
        self.stream.dataReceived(encodeChannelData(0x4001, b"x", pad=True))
        self.assertEqual(self.server.counters["dropChannelUnbound"], 1)
        self.client.request(Method.REFRESH, [Lifetime(0)])
        self.stream.dataReceived(encodeChannelData(0x4001, b"x", pad=True))
        self.assertEqual(self.server.counters["dropChannelNoAllocation"], 1)
        self.assertFalse(self.wire.disconnecting)

    def test_downlinkChannelDataPadded(self):
        """
        Peer data on a channel reaches the client as ChannelData padded to four bytes.
        """
        allocation = self.allocate()
        self.bind()
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.client.receivedBytes()
        relay.datagramReceived(b"hello", PEER)
        wire = self.client.receivedBytes()
        self.assertEqual(wire, encodeChannelData(0x4000, b"hello", pad=True))
        self.assertEqual(len(wire) % 4, 0)
        self.assertEqual(decodeChannelData(wire[:9]), (0x4000, b"hello"))

    def test_downlinkDataIndication(self):
        """
        Peer data without a channel reaches the client as a Data indication on the stream.
        """
        allocation = self.allocate()
        response = self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        relay.datagramReceived(b"abc", PEER)
        [data] = self.client.received()
        message = decodeMessage(data)
        self.assertEqual((message.method, message.get(Data).value), (Method.DATA, b"abc"))

    def test_sendIndication(self):
        """
        A Send indication over the stream goes to a permitted peer.
        """
        allocation = self.allocate()
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.stream.dataReceived(encodeMessage(
            Method.SEND, MessageClass.INDICATION, newTransactionId(),
            [XorPeerAddress(*PEER), Data(b"payload")],
        ))
        self.assertEqual(relay.transport.written, [(b"payload", PEER)])

    def test_connectionLossDeletesAllocation(self):
        """
        When the connection closes, its allocation is deleted and the relay port freed.
        """
        allocation = self.allocate()
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.server.table), 0)
        self.assertNotIn(allocation.relayAddress, self.fixture.relayFactory.open)
        self.assertEqual(self.server.counters["tcpClosedWithAllocation"], 1)

    def test_idleWithoutAllocationClosed(self):
        """
        A connection that has made no allocation within L{IDLE_TIMEOUT} is aborted, even if
        it keeps sending (unauthenticated) requests.
        """
        self.clock.advance(IDLE_TIMEOUT - 1)
        self.stream.dataReceived(binding())
        self.assertFalse(self.wire.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.wire.disconnected)
        self.assertEqual(self.server.counters["tcpIdleClosed"], 1)

    def test_allocationKeepsConnection(self):
        """
        A connection with a live allocation stays open; once the allocation is deleted it is
        closed within two idle periods.
        """
        self.allocate()
        self.clock.advance(IDLE_TIMEOUT * 3)
        self.assertFalse(self.wire.disconnecting)
        response = self.client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.clock.advance(IDLE_TIMEOUT * 2)
        self.assertTrue(self.wire.disconnected)

    def test_noTimerAfterClose(self):
        """
        Closing the connection cancels its idle timer.
        """
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_framingErrorCloses(self):
        """
        Bytes that cannot start a message abort the connection; messages before them in the
        same segment are still not answered twice, and nothing escapes.
        """
        self.stream.dataReceived(b"\x80" + bytes(19))
        self.assertTrue(self.wire.disconnected)
        self.assertEqual(self.server.counters["dropStreamFraming"], 1)
        self.assertEqual(self.client.received(), [])

    def test_bufferBounded(self):
        """
        Before an allocation a connection may not send a message over
        L{PRE_ALLOCATION_BUFFER} bytes (it is closed at the header); with one, a partial
        message is buffered up to L{MAX_MESSAGE} bytes, and a ChannelData message announced
        beyond the bound closes the connection.
        """
        header = encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), [])
        announced = header[:2] + (0x2000).to_bytes(2, "big") + header[4:]
        early = StreamTestClient(self.server, self.clock, ("192.0.2.6", 2))
        early.stream.dataReceived(announced)
        self.assertTrue(early.wire.disconnected)
        self.allocate()
        announced = header[:2] + (0xFFFC).to_bytes(2, "big") + header[4:]
        self.stream.dataReceived(announced + bytes(60000))
        self.assertFalse(self.wire.disconnecting)
        self.assertLessEqual(self.stream._framer.buffered, MAX_MESSAGE)
        # ChannelData announcing 0xFFFF padded to 0x10000 is over the bound.
        other = StreamTestClient(self.server, self.clock, ("192.0.2.6", 1))
        other.stream._framer.maxBuffered = 1000
        other.stream._framer.acceptChannelData = True
        other.stream.dataReceived(b"\x40\x00\x04\x00")
        self.assertTrue(other.wire.disconnected)

    def test_responsesSurviveBackpressure(self):
        """
        While paused, STUN responses still go out (a client over TCP does not retransmit);
        only relayed data (ChannelData, Data indications) is dropped.
        """
        allocation = self.allocate()
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.stream.pauseProducing()
        response = self.client.request(Method.REFRESH, [Lifetime(600)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        relay.datagramReceived(b"dropped", PEER)
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["dropStreamBackpressure"], 1)

    def test_backpressureDropsRelayedData(self):
        """
        While the transport has paused the connection (its buffer is full), peer data for the
        client is dropped and counted instead of buffered; after resume it flows again.
        """
        allocation = self.allocate()
        self.bind()
        relay = self.fixture.relayFactory.open[allocation.relayAddress]
        self.client.receivedBytes()
        self.assertIs(self.wire.producer, self.stream)
        self.assertTrue(self.wire.streaming)
        self.stream.pauseProducing()
        relay.datagramReceived(b"lost", PEER)
        self.assertEqual(self.client.receivedBytes(), b"")
        self.assertEqual(self.server.counters["dropStreamBackpressure"], 1)
        self.stream.resumeProducing()
        relay.datagramReceived(b"kept", PEER)
        self.assertEqual(self.client.receivedBytes(), encodeChannelData(0x4000, b"kept"))

    def test_writeAfterCloseDropped(self):
        """
        A write after the connection closed (a peer datagram racing the close) is dropped.
        """
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.stream.write(b"\x40\x00\x00\x01x", CLIENT)
        self.assertEqual(self.client.receivedBytes(), b"")
        self.assertEqual(self.server.counters["dropStreamClosed"], 1)

    def test_disconnected(self):
        """
        C{disconnected} says whether the connection is gone, for answers that come later.
        """
        self.assertFalse(self.stream.disconnected)
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.stream.disconnected)

    def test_internalErrorContained(self):
        """
        An unexpected exception while handling a message is counted, not raised into the
        reactor, and later messages are still handled.
        """
        def broken(*args):
            raise RuntimeError("bug")

        self.server.handleStun = broken
        self.stream.dataReceived(binding() + binding())
        self.assertEqual(self.server.counters["internalError"], 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_anyBytesNeverRaise(self, data):
        """
        Whatever bytes arrive, C{dataReceived} returns normally.
        """
        client = StreamTestClient(self.server, self.clock, ("192.0.2.7", 7))
        client.stream.dataReceived(data)
        client.stream.connectionLost(Failure(ConnectionDone()))


class StreamListenerFactoryTests(SynchronousTestCase):
    def connect(self, factory, host, port=1000):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        connection = factory.buildProtocol(IPv4Address("TCP", host, port))
        wire = StringTransport(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 3478),
            peerAddress=IPv4Address("TCP", host, port),
        )
        connection.makeConnection(wire)
        return connection, wire

    def test_pendingLimits(self):
        """
        Past C{maxPendingPerSource} connections without an allocation from one IP, or
        C{maxPending} in all, new connections are closed at once and counted; a connection
        that allocates, or closes, frees its place.
        """
        fixture = ServerFixture()
        factory = StreamListenerFactory(fixture.server, fixture.clock)
        factory.maxPendingPerSource, factory.maxPending = 2, 3
        first, _ = self.connect(factory, "192.0.2.5", 1)
        second, _ = self.connect(factory, "192.0.2.5", 2)
        _, refused = self.connect(factory, "192.0.2.5", 3)
        self.assertTrue(refused.disconnected)
        self.assertEqual(fixture.server.counters["tcpRefused"], 1)
        _, other = self.connect(factory, "192.0.2.6", 1)
        self.assertFalse(other.disconnecting)
        _, overall = self.connect(factory, "192.0.2.7", 1)
        self.assertTrue(overall.disconnected)
        first.connectionLost(Failure(ConnectionDone()))
        _, again = self.connect(factory, "192.0.2.5", 4)
        self.assertFalse(again.disconnecting)
        self.assertEqual(factory.pending, {"192.0.2.5": 2, "192.0.2.6": 1})

    def test_allocationLeavesPending(self):
        """
        A connection that allocates no longer counts against the limits, and may then send
        messages larger than L{PRE_ALLOCATION_BUFFER}.
        """
        fixture = ServerFixture()
        factory = StreamListenerFactory(fixture.server, fixture.clock)
        client = StreamTestClient(fixture.server, fixture.clock, CLIENT)
        client.stream.factory = factory
        factory.admit(client.stream)
        client.stream._pending = True
        response = client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertEqual((factory.pending, factory.pendingTotal), ({}, 0))
        self.assertGreater(client.stream._framer.maxBuffered, PRE_ALLOCATION_BUFFER)

    def test_stopFactoryClosesConnections(self):
        """
        When its last listener stops, the factory aborts its client connections.
        """
        fixture = ServerFixture()
        factory = StreamListenerFactory(fixture.server, fixture.clock)
        _, wire = self.connect(factory, "192.0.2.5")
        factory.doStart()
        factory.doStop()
        self.assertTrue(wire.disconnected)

    def test_buildsConnections(self):
        """
        The factory builds a L{StreamConnection} per connection, with its transport name and
        idle timeout.
        """
        fixture = ServerFixture()
        factory = StreamListenerFactory(fixture.server, fixture.clock, "tls", idleTimeout=5)
        connection = factory.buildProtocol(None)
        self.assertIsInstance(connection, StreamConnection)
        self.assertEqual((connection.protocolName, connection._idleTimeout), ("tls", 5))
        self.assertIs(connection.factory, factory)


class FakePeerConnection:
    """
    The peer side of a bound data connection, recording what the data connection does to it.
    """

    def __init__(self):
        from twisted.internet.testing import StringTransport

        self.transport = StringTransport()
        self.boundTo = None
        self.aborted = False

    def bound(self, client):
        self.boundTo = client

    def abort(self):
        self.aborted = True


class SpliceTests(SynchronousTestCase):
    def setUp(self):
        self.fixture = ServerFixture()
        self.client = StreamTestClient(self.fixture.server, self.fixture.clock, CLIENT)
        self.stream = self.client.stream
        self.peer = FakePeerConnection()

    def spliceAfterFirstMessage(self):
        """
        Make the server splice the connection to L{peer} after answering the first message it
        gets, as it does after a ConnectionBind.
        """
        original = self.fixture.server.handleStun

        def handleStun(data, transport, *args):
            original(data, transport, *args)
            if self.stream.spliced is None:
                transport.splice(self.peer)

        self.fixture.server.handleStun = handleStun

    def test_rawBothWays(self):
        """
        After C{splice}, bytes from the client go to the peer unframed (even bytes that are not
        STUN), and bytes buffered by the framer before the splice go first.
        """
        request = binding()
        self.stream.dataReceived(request[:10])
        self.stream.splice(self.peer)
        self.assertIs(self.peer.boundTo, self.stream)
        self.stream.dataReceived(b"\xffnot stun")
        self.assertEqual(self.peer.transport.value(), request[:10] + b"\xffnot stun")
        self.assertFalse(self.client.wire.disconnecting)

    def test_pipelinedBytesKeepOrder(self):
        """
        A ConnectionBind followed in the same segment by a whole message and a partial one:
        the peer gets the message, then the partial bytes, in the order sent.
        """
        self.spliceAfterFirstMessage()
        bind, whole, partial = binding(), binding(), binding()[:7]
        self.stream.dataReceived(bind + whole + partial)
        self.assertEqual(self.peer.transport.value(), whole + partial)

    def test_rawBytesAfterBindUntouched(self):
        """
        Bytes after a ConnectionBind in the same segment reach the peer exactly as sent, even
        when they look like unpadded ChannelData or cannot start any message: before its
        allocation a connection frames one message at a time, so they are never parsed.
        """
        self.spliceAfterFirstMessage()
        raw = b"\x40\x00\x00\x03abc" + b"\x80garbage"
        self.stream.dataReceived(binding() + raw)
        self.assertEqual(self.peer.transport.value(), raw)
        self.assertFalse(self.client.wire.disconnecting)

    def test_bytesAfterBindInSameSegment(self):
        """
        Messages framed in the same segment after the one that spliced go to the peer as they
        were, not to the server.
        """
        self.spliceAfterFirstMessage()
        first, second = binding(), binding()
        self.stream.dataReceived(first + second)
        self.assertEqual(len(self.client.received()), 1)
        self.assertEqual(self.peer.transport.value(), second)

    def test_idleRuleSparesBoundConnection(self):
        """
        A bound data connection has no allocation but is not closed by the idle rule; when it
        closes, its peer connection is aborted.
        """
        self.stream.splice(self.peer)
        self.fixture.clock.advance(IDLE_TIMEOUT * 3)
        self.assertFalse(self.client.wire.disconnecting)
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.peer.aborted)
