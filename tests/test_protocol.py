"""
Tests for L{twisted_turn.protocol}: the data path in both directions.
"""

import socket
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn.allocation import FiveTuple
from twisted_turn.protocol import RelayProtocol, relayChannelData
from hypothesis import given, settings, strategies as st

from twisted_turn.stun.attributes import (
    AdditionalAddressFamily,
    ChannelNumber,
    Data,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.channeldata import decodeChannelData, encodeChannelData
from twisted_turn.stun.integrity import verifyFingerprint
from twisted_turn.stun.message import MessageClass, Method, decodeMessage, encodeMessage
from twisted_turn.testing import FakeUDPTransport, ServerFixture
from tests.test_stun_message import sendAttributes

PEER = ("8.8.8.8", 6000)


class FailingTransport(FakeUDPTransport):
    def write(self, data, addr):
        raise OSError(1, "Operation not permitted")


class DataPathTests(SynchronousTestCase):
    def setUp(self):
        self.fixture = ServerFixture()
        self.server = self.fixture.server
        self.client = self.fixture.client()
        response = self.client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        host, port = self.client.address
        self.allocation = self.server.table.get(FiveTuple(host, port, "198.51.100.1", 3478))
        self.relay = self.fixture.relayFactory.open[self.allocation.relayAddress]

    def bind(self, number=0x4000, peer=PEER):
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress(*peer)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)

    def test_channelDataToPeer(self):
        """
        ChannelData on a bound channel goes to the peer without its header; padding after
        the declared length is not sent.
        """
        self.bind()
        self.client.send(encodeChannelData(0x4000, b"media", pad=True))
        self.assertEqual(self.relay.transport.written, [(b"media", PEER)])

    def test_channelDataUnbound(self):
        """
        ChannelData on an unbound channel is dropped and counted.
        """
        self.client.send(encodeChannelData(0x4001, b"media"))
        self.assertEqual(self.relay.transport.written, [])
        self.assertEqual(self.server.counters["dropChannelUnbound"], 1)

    def test_channelDataExpired(self):
        """
        ChannelData on a channel whose binding expired is dropped.
        """
        self.client.request(Method.REFRESH, [Lifetime(3600)])
        self.bind()
        self.fixture.clock.advance(601)
        self.assertGreater(self.allocation.expiresAt, self.fixture.clock.seconds())
        self.client.send(encodeChannelData(0x4000, b"media"))
        self.assertEqual(self.relay.transport.written, [])

    def test_channelDataTruncated(self):
        """
        ChannelData whose length field exceeds the datagram is dropped and counted.
        """
        self.bind()
        self.client.send(b"\x40\x00\x00\x10short")
        self.assertEqual(self.relay.transport.written, [])
        self.assertEqual(self.server.counters["dropChannelMalformed"], 1)

    def test_channelDataWithoutAllocation(self):
        """
        ChannelData from an address with no allocation is dropped and counted.
        """
        self.fixture.listener.datagramReceived(encodeChannelData(0x4000, b"x"), ("192.0.2.1", 1))
        self.assertEqual(self.server.counters["dropChannelNoAllocation"], 1)

    def test_notStunDropped(self):
        """
        Datagrams that are neither STUN nor ChannelData, or too short, are dropped and counted.
        """
        self.client.send(b"\x80\x00\x00\x00")
        self.client.send(b"\x00")
        self.assertEqual(self.server.counters["dropNotStun"], 1)
        self.assertEqual(self.server.counters["dropShort"], 1)
        self.assertEqual(self.client.received(), [])

    def test_peerDataAsChannelData(self):
        """
        A datagram from a peer with a bound channel reaches the client as ChannelData.
        """
        self.bind()
        self.relay.datagramReceived(b"reply", PEER)
        [data] = self.client.received()
        self.assertEqual(decodeChannelData(data), (0x4000, b"reply"))

    def test_peerDataAsDataIndication(self):
        """
        A datagram from a permitted peer without a channel reaches the client as a Data
        indication naming the peer.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.relay.datagramReceived(b"reply", PEER)
        [data] = self.client.received()
        message = decodeMessage(data)
        self.assertEqual(
            (message.method, message.messageClass), (Method.DATA, MessageClass.INDICATION)
        )
        peer = message.get(XorPeerAddress)
        self.assertEqual((peer.host, peer.port), PEER)
        self.assertEqual(message.get(Data).value, b"reply")

    def test_dataIndicationFingerprint(self):
        """
        With the fingerprint option, Data indications carry a valid FINGERPRINT.
        """
        fixture = ServerFixture(fingerprint=True)
        client = fixture.client()
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        [relay] = fixture.relayFactory.open.values()
        relay.datagramReceived(b"reply", PEER)
        message = decodeMessage(client.received()[-1])
        self.assertIs(verifyFingerprint(message), True)
        self.assertEqual(message.get(Data).value, b"reply")

    def test_peerWithoutPermissionDropped(self):
        """
        A datagram from a peer without a permission is dropped and counted, and so is one
        after the permission expired.
        """
        self.relay.datagramReceived(b"reply", PEER)
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.fixture.clock.advance(301)
        self.relay.datagramReceived(b"reply", PEER)
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["dropPeerNoPermission"], 2)

    def test_unattachedRelayDrops(self):
        """
        A relay socket not yet attached to an allocation (a reservation) drops datagrams.
        """
        protocol = RelayProtocol(self.server, self.fixture.clock)
        protocol.makeConnection(FakeUDPTransport())
        protocol.datagramReceived(b"x", PEER)
        self.assertEqual(self.server.counters["dropRelayUnattached"], 1)

    def test_failedWritesCounted(self):
        """
        A write that fails (in either direction) is counted, not raised.
        """
        self.bind()
        self.allocation.channels[0x4000].relay = FailingTransport()
        self.client.send(encodeChannelData(0x4000, b"media"))
        self.allocation.clientTransport = FailingTransport()
        self.relay.datagramReceived(b"reply", PEER)
        self.assertEqual(self.server.counters["dropWriteFailed"], 2)

    def test_failedSendIndicationWriteCounted(self):
        """
        A Send indication whose write the kernel refuses (port 0, a broadcast address) is
        counted, not raised.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.allocation.relay = FailingTransport()
        self.client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, b"s" * 12,
                [XorPeerAddress("8.8.8.8", 0), Data(b"x")],
            )
        )
        self.assertEqual(self.server.counters["dropWriteFailed"], 1)
        self.assertEqual(self.server.counters["internalError"], 0)

    def test_oversizedPeerDatagramDropped(self):
        """
        A peer datagram too large for a Data indication is dropped and counted.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.relay.datagramReceived(b"x" * 65527, PEER)
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["dropWriteFailed"], 1)

    def test_expiredAllocationRelaysNothing(self):
        """
        Between its expiry and the next sweep, an allocation relays nothing either way, even
        when its channel and permission are still valid.
        """
        self.bind()
        self.allocation.expiresAt = self.fixture.clock.seconds() - 1
        self.client.send(encodeChannelData(0x4000, b"media"))
        self.relay.datagramReceived(b"reply", PEER)
        self.assertEqual(self.relay.transport.written, [])
        self.assertEqual(self.client.received(), [])

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=70000), st.sampled_from([PEER, ("8.8.4.4", 1), ("::1", 5)]))
    def test_peerDataNeverRaises(self, data, peer):
        """
        Whatever a peer sends, from wherever, the relay protocol never raises.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.relay.datagramReceived(data, peer)
        self.assertEqual(self.server.counters["internalError"], 0)

    def test_channelToClosedRelayPortDropped(self):
        """
        A channel to another allocation's relay socket (the server's own relay address) stops
        relaying when that relay closes, so it never reaches whatever binds the port next.
        """
        other = self.fixture.client(address=("192.0.2.6", 1))
        response = other.request(Method.ALLOCATE, [RequestedTransport(17)])
        relayed = response.get(XorRelayedAddress)
        self.bind(0x4001, (relayed.host, relayed.port))
        self.client.send(encodeChannelData(0x4001, b"one"))
        other.request(Method.REFRESH, [Lifetime(0)])
        self.client.send(encodeChannelData(0x4001, b"two"))
        self.assertEqual(
            self.relay.transport.written, [(b"one", (relayed.host, relayed.port))]
        )
        self.assertEqual(self.server.counters["dropPeerDenied"], 1)

    def test_setDontFragment(self):
        """
        On Linux, DONT-FRAGMENT sets IP_PMTUDISC_DO on an IPv4 relay socket and IPV6_DONTFRAG
        on an IPv6 one; without a socket it reports failure.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("DONT-FRAGMENT is served on Linux only")
        for family, level, option, value in [
            (socket.AF_INET, socket.IPPROTO_IP, 10, 2),
            (socket.AF_INET6, socket.IPPROTO_IPV6, 62, 1),
        ]:
            protocol = RelayProtocol(self.server, self.fixture.clock)
            sock = socket.socket(family, socket.SOCK_DGRAM)
            self.addCleanup(sock.close)
            protocol.makeConnection(FakeUDPTransport("::1", 1, sock))
            self.assertTrue(protocol.setDontFragment())
            self.assertEqual(sock.getsockopt(level, option), value)
        bare = RelayProtocol(self.server, self.fixture.clock)
        bare.makeConnection(FakeUDPTransport())
        self.assertFalse(bare.setDontFragment())

    @settings(max_examples=150, deadline=None)
    @given(sendAttributes, st.booleans(), st.booleans())
    def test_fastSendPathAgreesWithServer(self, attributes, permitted, fingerprint):
        """
        A Send indication has the same effect (what the relay sends, what is counted) whether
        the listener's fast path takes it or the server decodes it in full.
        """
        outcomes = []
        for fast in (True, False):
            fixture = ServerFixture()
            client = fixture.client()
            client.request(Method.ALLOCATE, [RequestedTransport(17)])
            if permitted:
                client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
            if not fast:
                fixture.listener._relaySend = lambda data, addr: False
            [relay] = fixture.relayFactory.open.values()
            client.send(
                encodeMessage(
                    Method.SEND, MessageClass.INDICATION, b"f" * 12,
                    [XorPeerAddress(*PEER), *attributes], fingerprint=fingerprint,
                )
            )
            outcomes.append((relay.transport.written, dict(fixture.server.counters)))
        self.assertEqual(outcomes[0], outcomes[1])

    def test_fastSendPathUsed(self):
        """
        A plain Send indication to a permitted peer is relayed by the listener itself.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        calls = []
        self.patch(self.server, "handleStun", lambda *args: calls.append(args))
        self.client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, b"f" * 12,
                [XorPeerAddress(*PEER), Data(b"media")],
            )
        )
        self.assertEqual(self.relay.transport.written, [(b"media", PEER)])
        self.assertEqual(calls, [])

    def test_closeStopsListening(self):
        """
        Closing a relay handle detaches it and stops its port.
        """
        self.relay.close()
        self.assertTrue(self.relay.transport.stopped)
        self.assertIsNone(self.relay.allocation)


PEER6 = ("2606:4700::1", 6000)


class DualStackDataPathTests(SynchronousTestCase):
    """
    The data path of a dual-stack allocation: each peer is reached through, and heard on, the
    relay socket of its family.
    """

    def setUp(self):
        self.fixture = ServerFixture(relayHosts=("203.0.113.10", "2001:db8::10"))
        self.server = self.fixture.server
        self.client = self.fixture.client()
        response = self.client.request(
            Method.ALLOCATE, [RequestedTransport(17), AdditionalAddressFamily(2)]
        )
        four, six = response.getAll(XorRelayedAddress)
        self.relay4 = self.fixture.relayFactory.open[(four.host, four.port)]
        self.relay6 = self.fixture.relayFactory.open[(six.host, six.port)]
        host, port = self.client.address
        self.allocation = self.server.table.get(FiveTuple(host, port, "198.51.100.1", 3478))

    def bind(self, number, peer):
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress(*peer)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)

    def test_channelDataByPeerFamily(self):
        """
        ChannelData on a channel to an IPv6 peer leaves through the IPv6 relay socket, on a
        channel to an IPv4 peer through the IPv4 one.
        """
        self.bind(0x4000, PEER)
        self.bind(0x4001, PEER6)
        self.client.send(encodeChannelData(0x4001, b"six"))
        self.client.send(encodeChannelData(0x4000, b"four"))
        self.assertEqual(self.relay4.transport.written, [(b"four", PEER)])
        self.assertEqual(self.relay6.transport.written, [(b"six", PEER6)])

    def test_streamChannelDataByPeerFamily(self):
        """
        L{relayChannelData} (the stream and DTLS listeners' path) picks the relay the same way.
        """
        self.bind(0x4000, PEER)
        self.bind(0x4001, PEER6)
        now = self.fixture.clock.seconds()
        for number in (0x4000, 0x4001):
            relayChannelData(
                self.server, self.server.counters, self.allocation,
                encodeChannelData(number, b"x"), now,
            )
        self.assertEqual(self.relay4.transport.written, [(b"x", PEER)])
        self.assertEqual(self.relay6.transport.written, [(b"x", PEER6)])

    def test_sendIndicationsByPeerFamily(self):
        """
        Send indications go out through the relay of the peer's family, whether the
        listener's fast path (IPv4 peers) or the server (IPv6 peers) relays them.
        """
        self.client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress(*PEER), XorPeerAddress(*PEER6)]
        )
        for peer in (PEER, PEER6):
            self.client.send(
                encodeMessage(
                    Method.SEND, MessageClass.INDICATION, b"s" * 12,
                    [XorPeerAddress(*peer), Data(b"media")],
                )
            )
        self.assertEqual(self.relay4.transport.written, [(b"media", PEER)])
        self.assertEqual(self.relay6.transport.written, [(b"media", PEER6)])

    def test_peerDataFromBothSockets(self):
        """
        Datagrams from peers on either relay socket reach the client: as ChannelData where a
        channel is bound, else as a Data indication naming the peer in its own family.
        """
        self.bind(0x4001, PEER6)
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        other6 = ("2606:4700::2", 7)
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*other6)])
        self.relay6.datagramReceived(b"channel", PEER6)
        self.relay4.datagramReceived(b"indication4", PEER)
        self.relay6.datagramReceived(b"indication6", other6)
        channel, indication4, indication6 = self.client.received()
        self.assertEqual(decodeChannelData(channel), (0x4001, b"channel"))
        for data, (host, port), payload in (
            (indication4, PEER, b"indication4"), (indication6, other6, b"indication6"),
        ):
            message = decodeMessage(data)
            peer = message.get(XorPeerAddress)
            self.assertEqual((peer.host, peer.port), (host, port))
            self.assertEqual(message.get(Data).value, payload)

    def test_peerWithoutPermissionOnEitherSocketDropped(self):
        """
        Either relay socket drops datagrams from peers without a permission.
        """
        self.relay4.datagramReceived(b"x", PEER)
        self.relay6.datagramReceived(b"x", PEER6)
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["dropPeerNoPermission"], 2)

    def test_deletedFamilyStopsAtOnce(self):
        """
        After a Refresh deletes the IPv6 half, ChannelData on its channel is dropped and its
        relay socket is closed and detached; the IPv4 channel relays on.
        """
        self.bind(0x4000, PEER)
        self.bind(0x4001, PEER6)
        self.client.request(Method.REFRESH, [Lifetime(0), RequestedAddressFamily(2)])
        self.client.send(encodeChannelData(0x4001, b"six"))
        self.client.send(encodeChannelData(0x4000, b"four"))
        self.assertEqual(self.relay6.transport.written, [])
        self.assertEqual(self.relay4.transport.written, [(b"four", PEER)])
        self.assertEqual(self.server.counters["dropChannelUnbound"], 1)
        self.assertTrue(self.relay6.transport.stopped)
        self.assertIsNone(self.relay6.allocation)

    def test_singleFamilyChannelsUseTheRelay(self):
        """
        On a single-family allocation every channel sends through C{allocation.relay}: the
        per-datagram work is the same as before dual-stack allocations.
        """
        fixture = ServerFixture()
        client = fixture.client()
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        [allocation] = fixture.server.table
        self.assertIs(allocation.channels[0x4000].relay, allocation.relay)
        self.assertIsNone(allocation.relay6)

    @settings(max_examples=100, deadline=None)
    @given(sendAttributes, st.booleans(), st.booleans())
    def test_fastSendPathAgreesWithServer(self, attributes, permitted, fingerprint):
        """
        On a dual-stack allocation, too, a Send indication has the same effect on both relay
        sockets whether the listener's fast path takes it or the server decodes it in full.
        """
        for peer in (PEER, PEER6):
            outcomes = []
            for fast in (True, False):
                fixture = ServerFixture(relayHosts=("203.0.113.10", "2001:db8::10"))
                client = fixture.client()
                client.request(
                    Method.ALLOCATE, [RequestedTransport(17), AdditionalAddressFamily(2)]
                )
                if permitted:
                    client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*peer)])
                if not fast:
                    fixture.listener._relaySend = lambda data, addr: False
                client.send(
                    encodeMessage(
                        Method.SEND, MessageClass.INDICATION, b"f" * 12,
                        [XorPeerAddress(*peer), *attributes], fingerprint=fingerprint,
                    )
                )
                outcomes.append((
                    sorted(
                        (host, relay.transport.written)
                        for (host, _), relay in fixture.relayFactory.open.items()
                    ),
                    dict(fixture.server.counters),
                ))
            self.assertEqual(outcomes[0], outcomes[1])
