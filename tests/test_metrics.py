"""
Tests for L{twisted_turn.metrics}: what a scrape shows of a running service on fakes, with
coturn's metric names, and that the set of series does not grow with the number of users.
"""

from __future__ import annotations

from typing import Dict, Tuple

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn.auth import restCredentials
from twisted_turn.service import TurnService
from twisted_turn.stun.attributes import (
    ChannelNumber,
    Lifetime,
    RequestedTransport,
    XorPeerAddress,
)
from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.message import Method
from twisted_turn.testing import MemoryUDPReactor, TestClient

try:
    import prometheus_client
except ImportError:  # pragma: no cover - the metrics extra is part of the test extra
    prometheus_client = None

PEER = ("8.8.8.8", 6000)
UDP = RequestedTransport(17)


def scrape(service) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """
    Every sample a scrape of C{service} gives: (name, sorted labels) to value.
    """
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from twisted_turn import metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.TurnCollector(lambda: metrics.snapshot(service)))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class MetricsTests(SynchronousTestCase):
    def setUp(self):
        if prometheus_client is None:
            raise SkipTest("prometheus_client is not installed")

    def service(self, **options):
        options.setdefault("listeningIps", ("198.51.100.1",))
        options.setdefault("relayIps", ("198.51.100.1",))
        options.setdefault("users", (("alice", "secret"),))
        self.reactor = MemoryUDPReactor()
        self.reactor.advance(1_700_000_000)
        service = TurnService(reactor=self.reactor, minPort=50000, maxPort=50099, **options)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def clientOf(self, service, username="alice", password="secret", port=1):
        listener = service.listeningPorts[0]
        return TestClient(listener.protocol, listener, ("192.0.2.5", port), username, password)

    def test_coturnNamesAndLiveTraffic(self):
        """
        With one UDP allocation relaying 10 datagrams each way, the scrape shows coturn's
        metrics under coturn's names (the traffic moving while the session lives) and ours.
        """
        service = self.service()
        client = self.clientOf(service)
        client.request(Method.ALLOCATE, [UDP])
        client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        [allocation] = service.server.table
        for _ in range(10):
            client.send(encodeChannelData(0x4000, b"x" * 100))
            allocation.relayPort.datagramReceived(b"y" * 50, PEER)
        samples = scrape(service)
        self.assertEqual(samples[("turn_total_allocations", (("type", "UDP"),))], 1)
        self.assertEqual(samples[("turn_total_allocations", (("type", "TCP"),))], 0)
        for name, value in [("rcvp", 10), ("rcvb", 1000), ("peer_sentp", 10),
                            ("peer_sentb", 1000), ("peer_rcvp", 10), ("peer_rcvb", 500),
                            ("sentp", 10), ("sentb", 500)]:
            self.assertEqual(samples[(f"turn_traffic_{name}", ())], value, name)
            self.assertEqual(samples[(f"turn_total_traffic_{name}", ())], value, name)
        self.assertEqual(
            samples[("turn_allocations", (("family", "ipv4"), ("transport", "udp")))], 1
        )
        self.assertEqual(
            samples[("turn_channels", (("family", "ipv4"), ("transport", "udp")))], 1
        )
        self.assertEqual(
            samples[("turn_relay_ports", (("family", "ipv4"), ("state", "used")))], 1
        )
        self.assertEqual(
            samples[("turn_relay_ports", (("family", "ipv4"), ("state", "free")))], 99
        )
        self.assertEqual(samples[("turn_error_responses_total", (("code", "401"),))], 1)
        self.assertEqual(samples[("turn_unauthenticated_401_responses", ())], 1)
        self.assertEqual(samples[("turn_packet_processed", ())], 20)

    def test_trafficSurvivesTheSession(self):
        """
        When the allocation ends, its traffic stays in the counters (they never go down).
        """
        service = self.service()
        client = self.clientOf(service)
        client.request(Method.ALLOCATE, [UDP])
        client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        client.send(encodeChannelData(0x4000, b"x" * 100))
        client.request(Method.REFRESH, [Lifetime(0)])
        samples = scrape(service)
        self.assertEqual(samples[("turn_traffic_rcvb", ())], 100)
        self.assertEqual(samples[("turn_total_allocations", (("type", "UDP"),))], 0)

    def test_bindingAndDrops(self):
        """
        Binding requests and responses, and drops by reason, are counted.
        """
        from twisted_turn.stun.message import MessageClass, encodeMessage, newTransactionId

        service = self.service()
        client = self.clientOf(service)
        client.send(encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), []))
        client.send(b"\xff" * 30)
        samples = scrape(service)
        self.assertEqual(samples[("stun_binding_request", ())], 1)
        self.assertEqual(samples[("stun_binding_response", ())], 1)
        self.assertEqual(samples[("turn_drops_total", (("reason", "dropNotStun"),))], 1)

    def test_seriesDoNotGrowWithUsers(self):
        """
        10,000 distinct REST API users, each allocating and deleting, leave the number of
        series where one user left it; with --prometheus-username-labels they are labelled.
        """
        secret = "sekrit"
        service = self.service(users=(), staticAuthSecrets=(secret,), useAuthSecret=True,
                               unauthorizedRatelimit=False)
        now = self.reactor.seconds()

        def allocateAs(number):
            name, password = restCredentials(secret, f"user{number}", 3600, now)
            client = self.clientOf(service, name, password, port=number % 60000 + 1)
            client.request(Method.ALLOCATE, [UDP])
            client.request(Method.REFRESH, [Lifetime(0)])

        allocateAs(0)
        before = set(scrape(service))
        for number in range(1, 10_000):
            allocateAs(number)
        self.assertEqual(set(scrape(service)), before)
        labelled = self.service(users=(("alice", "secret"), ("bob", "pw")),
                                prometheusUsernameLabels=True, prometheus=True)
        for user, password, port in (("alice", "secret", 1), ("bob", "pw", 2)):
            self.clientOf(labelled, user, password, port).request(Method.ALLOCATE, [UDP])
        samples = scrape(labelled)
        self.assertEqual(samples[("turn_user_allocations", (("user", "bob"),))], 1)
        self.assertIn(("turn_traffic_rcvp", (("user", "alice"),)), samples)


class ReactorTimerTests(SynchronousTestCase):
    def test_measuresFromWakeToEnd(self):
        """
        The timer records, per iteration, the time from the poller's return to the end of the
        iteration, and leaves iterations whose poll did not run out.
        """
        from twisted_turn import metrics

        clock = iter([1.0, 1.25, 2.0, 2.003])

        class Poller:
            def poll(self, timeout, count):
                return []

        class Reactor:
            _poller = Poller()

            def doIteration(self, timeout):
                if timeout is not None:
                    self._poller.poll(timeout, 0)

        self.patch(metrics.time, "perf_counter", lambda: next(clock))
        reactor = Reactor()
        timer = metrics.ReactorTimer.install(reactor)
        reactor.doIteration(0.1)
        reactor.doIteration(0.1)
        reactor.doIteration(None)
        snapshot = timer.snapshot()
        self.assertAlmostEqual(snapshot["sum"], 0.253)
        self.assertEqual(snapshot["buckets"][-1], ("+Inf", 2))
        self.assertIsNone(metrics.ReactorTimer.install(object()))
