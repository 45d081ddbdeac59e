"""
Tests for L{twisted_turn.bandwidth}: the limit's arithmetic, and a server on fakes and a Clock
holding an allocation to its rate in each direction on every path (ChannelData, Send
indications, peer data), and refusing allocations past the capacity.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.bandwidth import (
    BURST_SECONDS,
    BandwidthPolicy,
    admitUp,
    setRate,
)
from twisted_turn.stun.attributes import (
    ChannelNumber,
    Data,
    ErrorCode,
    Lifetime,
    RequestedTransport,
    XorPeerAddress,
)
from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.message import MessageClass, Method, encodeMessage, newTransactionId
from twisted_turn.testing import ServerFixture

PEER = ("8.8.8.8", 6000)
UDP = RequestedTransport(17)


class Bucketed:
    """
    Just the fields L{twisted_turn.bandwidth} works on.
    """


class ArithmeticTests(SynchronousTestCase):
    """
    The generic cell rate algorithm of each direction, and the capacity.
    """

    def test_burstThenRate(self) -> None:
        """
        A full burst (a quarter second of the rate, plus the datagram that crosses it) passes
        at once; after that, datagrams pass at the rate; the other direction is untouched.
        """
        allocation = Bucketed()
        setRate(allocation, 1000, 100.0)
        admitted = sum(admitUp(allocation, 60, 100.0) for _ in range(100))
        self.assertEqual(admitted, 5)  # 250 bytes of burst: four, and the fifth crosses it
        self.assertFalse(admitUp(allocation, 60, 100.04))
        self.assertTrue(admitUp(allocation, 60, 100.06))
        self.assertEqual(allocation.downDue, 100.0)

    def test_idleIsNotBanked(self) -> None:
        """
        However long a direction was idle, what it may send at once is one burst: idle time
        does not add up (where a lazily refilled bucket would credit it twice).
        """
        allocation = Bucketed()
        setRate(allocation, 1000, 0.0)
        for start in (10.0, 20.0, 30.5, 1000.0):
            admitted = sum(admitUp(allocation, 60, start) for _ in range(100))
            self.assertEqual(admitted, 5, start)

    def test_anySizePasses(self) -> None:
        """
        A datagram larger than the burst still passes when the direction is on schedule, and
        the ones after it wait until it would have gone out at the rate.
        """
        allocation = Bucketed()
        setRate(allocation, 1000, 0.0)
        self.assertTrue(admitUp(allocation, 1200, 0.0))
        self.assertFalse(admitUp(allocation, 1, 0.9))
        self.assertTrue(admitUp(allocation, 1, 0.96))

    def test_neverMoreThanRateBurstAndOne(self) -> None:
        """
        Offered at ten times the rate for ten seconds, a direction passes the rate for that
        time, plus at most the burst and one datagram.
        """
        allocation = Bucketed()
        setRate(allocation, 10_000, 0.0)
        passed = sum(1000 for step in range(10_000) if admitUp(allocation, 1000, step / 1000))
        self.assertLessEqual(passed, 10_000 * 10 + 10_000 * BURST_SECONDS + 1000)
        self.assertGreaterEqual(passed, 10_000 * 10 - 1000)

    def test_policyReservesFromCapacity(self) -> None:
        """
        Each allocation reserves --max-bps of the capacity, the last one what is left, and
        none is admitted past it until one releases its share.
        """
        policy = BandwidthPolicy(maxBps=300, capacity=1000)
        self.assertEqual([policy.reserve() for _ in range(5)], [300, 300, 300, 100, None])
        policy.release(300)
        self.assertEqual(policy.reserve(), 300)
        self.assertEqual(BandwidthPolicy(maxBps=300).reserve(), 300)
        self.assertEqual(BandwidthPolicy().reserve(), 0)

    def test_policyChecks(self) -> None:
        """
        A capacity needs a per-allocation limit, and neither may be negative.
        """
        self.assertRaises(ValueError, BandwidthPolicy, capacity=1000)
        self.assertRaises(ValueError, BandwidthPolicy, maxBps=-1)


class ServerBandwidthTests(SynchronousTestCase):
    """
    A server with --max-bps on fakes and a Clock.
    """

    RATE = 10_000
    SIZE = 1000

    def setUp(self) -> None:
        self.fixture = ServerFixture(bandwidth=BandwidthPolicy(maxBps=self.RATE))
        self.client = self.fixture.client()
        self.client.request(Method.ALLOCATE, [UDP])
        [self.allocation] = self.fixture.server.table
        self.relay = self.allocation.relay

    def bind(self) -> None:
        response = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)

    def sendFor(self, seconds: float, send) -> None:
        """
        Call C{send()} every millisecond (ten times the limit at SIZE bytes) for C{seconds}
        of the fixture's clock.
        """
        for _ in range(int(seconds * 1000)):
            send()
            self.fixture.clock.advance(0.001)

    def assertHeld(self, relayed: int, seconds: float) -> None:
        """
        Over C{seconds} at ten times the limit, what went through is the rate for that time,
        plus at most the burst and one datagram, minus at most one datagram.
        """
        self.assertLessEqual(relayed, self.RATE * seconds + self.RATE * BURST_SECONDS + self.SIZE)
        self.assertGreaterEqual(relayed, self.RATE * seconds - self.SIZE)

    def test_channelDataUplinkHeld(self) -> None:
        """
        ChannelData from the client at ten times --max-bps reaches the peer at the limit; the
        rest is dropped and counted.
        """
        self.bind()
        payload = b"x" * self.SIZE
        self.sendFor(10, lambda: self.client.send(encodeChannelData(0x4000, payload)))
        relayed = sum(len(data) for data, _ in self.relay.written)
        self.assertHeld(relayed, 10)
        counters = self.fixture.server.counters
        self.assertEqual(counters["dropBandwidthUp"] + len(self.relay.written), 10_000)

    def test_sendIndicationUplinkHeld(self) -> None:
        """
        Send indications (the fast path and the full decode alike) are held to the same limit.
        """
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        payload = b"y" * self.SIZE

        def send() -> None:
            self.client.send(encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress(*PEER), Data(payload)],
            ))

        self.sendFor(10, send)
        self.assertHeld(sum(len(data) for data, _ in self.relay.written), 10)
        self.assertGreater(self.fixture.server.counters["dropBandwidthUp"], 0)

    def test_downlinkHeld(self) -> None:
        """
        Peer data to the client, as ChannelData or Data indications, is held to the limit on
        its own: a full uplink does not spend it.
        """
        self.bind()
        relayProtocol = self.allocation.relayPort
        payload = b"z" * self.SIZE
        self.sendFor(10, lambda: relayProtocol.datagramReceived(payload, PEER))
        delivered = [data for data, addr in self.fixture.transport.written
                     if addr == self.client.address and data[0] == 0x40]
        self.assertHeld(sum(len(data) - 4 for data in delivered), 10)
        self.assertGreater(self.fixture.server.counters["dropBandwidthDown"], 0)

    def test_unlimitedPassesEverything(self) -> None:
        """
        Without --max-bps nothing is dropped for bandwidth.
        """
        fixture = ServerFixture()
        client = fixture.client()
        client.request(Method.ALLOCATE, [UDP])
        client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        for _ in range(1000):
            client.send(encodeChannelData(0x4000, b"x" * 1000))
        [allocation] = fixture.server.table
        self.assertEqual(len(allocation.relay.written), 1000)
        self.assertEqual(fixture.server.counters["dropBandwidthUp"], 0)

    def test_capacityRefusesWith486(self) -> None:
        """
        With --bps-capacity for three allocations at --max-bps, the fourth Allocate gets 486,
        and one more is admitted once one of them is gone.
        """
        fixture = ServerFixture(bandwidth=BandwidthPolicy(maxBps=100, capacity=300))
        clients = [fixture.client(address=("192.0.2.5", port)) for port in range(1, 6)]
        codes = []
        for client in clients[:4]:
            response = client.request(Method.ALLOCATE, [UDP])
            error = response.get(ErrorCode)
            codes.append(None if error is None else (error.code, error.reason))
        self.assertEqual(codes, [None, None, None, (486, "Allocation Bandwidth Quota Reached")])
        clients[0].request(Method.REFRESH, [Lifetime(0)])
        response = clients[4].request(Method.ALLOCATE, [UDP])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertEqual(fixture.server.bandwidth.reserved, 300)

    def test_setBandwidthRerates(self) -> None:
        """
        L{TurnServer.setBandwidth} gives live allocations the new limit at once.
        """
        self.fixture.server.setBandwidth(50_000, 0)
        self.assertEqual(self.allocation.bps, 50_000)
        self.fixture.server.setBandwidth(0, 0)
        self.assertEqual(self.allocation.bps, 0)
        self.bind()
        for _ in range(1000):
            self.client.send(encodeChannelData(0x4000, b"x" * self.SIZE))
        self.assertEqual(len(self.relay.written), 1000)
