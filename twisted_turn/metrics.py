# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics (C{--prometheus}), with prometheus_client.

Nothing is counted for the metrics alone: on a scrape, L{snapshot} reads what the server keeps
anyway (its counters, the allocation table with each allocation's traffic, the relay ports,
the batching port's counters), as plain data that could cross a process boundary, and
L{TurnCollector} turns it into metric families.  So the data path pays nothing for them, and
the series are a fixed set: no label takes user names unless C{--prometheus-username-labels}.

Where coturn has a metric, it has coturn's name and labels, so a dashboard made for coturn
keeps working: its counters keep their exact names (no C{_total}: they are exposed untyped,
as coturn's own exporter does), and the traffic counters move while a session lives (coturn
adds a session's traffic only when it ends).  Metrics coturn lacks follow Prometheus'
conventions under C{turn_}.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from twisted.web.resource import Resource

__all__ = ["MetricsResource", "ReactorTimer", "TurnCollector", "snapshot"]

#: Upper bounds of the reactor iteration histogram, in seconds.
ITERATION_BUCKETS = (
    0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0,
)

#: The batching port's batch-size histogram labels and the upper bound of each.
_BATCH_BOUNDS = {"1": 1, "2-3": 3, "4-7": 7, "8-15": 15, "16-31": 31, "32-63": 63,
                 "64-127": 127, "128+": float("inf")}

#: Server counters that count authentication failures, by reason label.
_AUTH_FAILURES = {
    "authFailed": "bad_credentials",
    "staleNonce": "stale_or_foreign_nonce",
    "dropAuthFailureLimited": "user_failure_limit",
    "dropUnauthenticatedRateLimited": "source_rate_limit",
}


def snapshot(service: Any) -> Dict[str, Any]:
    """
    What the metrics show, read from a running L{twisted_turn.service.TurnService}: numbers,
    strings and dicts of them only.
    """
    server = service.server
    allocations: Dict[tuple, int] = {}
    permissions: Dict[tuple, int] = {}
    channels: Dict[tuple, int] = {}
    traffic = list(server.endedTraffic)
    byUser: Optional[Dict[str, List[int]]] = None
    if server.endedTrafficByUser is not None:
        byUser = {user: list(totals) for user, totals in server.endedTrafficByUser.items()}
    allocationsByUser: Dict[str, int] = {}
    for allocation in server.table:
        transport = allocation.fiveTuple.transport
        family = "tcp" if allocation.tcp else "+".join(
            "ipv4" if f == 1 else "ipv6" for f in allocation.families
        )
        key = (transport, family)
        allocations[key] = allocations.get(key, 0) + 1
        permissions[key] = permissions.get(key, 0) + len(allocation.permissions)
        channels[key] = channels.get(key, 0) + len(allocation.channels)
        counts = (allocation.upPackets, allocation.upBytes, allocation.downPackets,
                  allocation.downBytes)
        for index, value in enumerate(counts):
            traffic[index] += value
        if byUser is not None:
            user = allocation.username or ""
            totals = byUser.setdefault(user, [0, 0, 0, 0])
            for index, value in enumerate(counts):
                totals[index] += value
            allocationsByUser[user] = allocationsByUser.get(user, 0) + 1
    relays = server.relays
    ports: Dict[str, Dict[str, int]] = {}
    size = service.config.maxPort - service.config.minPort + 1
    for host in relays.relayHosts:
        family = "ipv6" if ":" in host else "ipv4"
        used = len(relays.inUse.get(host, ()))
        ports[family] = {"used": used, "free": max(0, size - used)}
    return {
        "counters": dict(server.counters),
        "udp": service.udpCounters(),
        "allocations": {"|".join(k): v for k, v in allocations.items()},
        "permissions": {"|".join(k): v for k, v in permissions.items()},
        "channels": {"|".join(k): v for k, v in channels.items()},
        "traffic": traffic,
        "trafficByUser": byUser,
        "allocationsByUser": allocationsByUser if byUser is not None else None,
        "relayPorts": ports,
        "iterations": service.reactorTimer.snapshot() if service.reactorTimer else None,
        "uptime": server._clock.seconds() - server.startedAt,
        "draining": server.draining,
    }


class TurnCollector:
    """
    A prometheus_client collector: the metric families of one L{snapshot}, taken at each
    scrape from C{source}.
    """

    def __init__(self, source: Callable[[], Dict[str, Any]]) -> None:
        self._source = source

    def describe(self) -> List[Any]:
        # Nothing up front: the families depend on what the scrape finds (the registry does
        # not need to know them beforehand).
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            Metric,
        )

        data = self._source()
        counters = data["counters"]
        udp = data["udp"]

        def coturnCounter(name: str, help: str, value: float,
                          labels: Sequence[tuple] = ()) -> Any:
            # coturn's names, exactly: untyped, since prometheus_client adds _total to a
            # counter's samples.
            metric = Metric(name, help, "unknown")
            if labels:
                for labelValues, labelValue in labels:
                    metric.add_sample(name, labelValues, labelValue)
            else:
                metric.add_sample(name, {}, value)
            return metric

        # -- coturn's metrics ---------------------------------------------------------------
        total = GaugeMetricFamily(
            "turn_total_allocations", "Represents current allocations number", labels=["type"]
        )
        byType: Dict[str, int] = {}
        for key, count in data["allocations"].items():
            transport = key.split("|")[0].upper()
            byType[transport] = byType.get(transport, 0) + count
        for transport in ("UDP", "TCP", "TLS", "DTLS"):
            total.add_metric([transport], byType.get(transport, 0))
        yield total

        names = ("rcvp", "rcvb", "peer_sentp", "peer_sentb", "peer_rcvp", "peer_rcvb",
                 "sentp", "sentb")
        up0, up1, down0, down1 = data["traffic"]
        values = (up0, up1, up0, up1, down0, down1, down0, down1)
        byUser = data["trafficByUser"]
        for name, value, index in zip(names, values, (0, 1, 0, 1, 2, 3, 2, 3)):
            what = {"rcv": "received from clients", "peer_sent": "sent to peers",
                    "peer_rcv": "received from peers", "sent": "sent to clients"}[name[:-1]]
            unit = "packets" if name.endswith("p") else "bytes"
            yield coturnCounter(f"turn_total_traffic_{name}",
                                f"Relayed {unit} {what}, all sessions, live ones included",
                                value)
            labels = (
                [({"user": user}, totals[index]) for user, totals in sorted(byUser.items())]
                if byUser is not None else ()
            )
            yield coturnCounter(f"turn_traffic_{name}",
                                f"Relayed {unit} {what}, live sessions included", value,
                                labels)
        yield coturnCounter("stun_binding_request", "STUN Binding requests",
                            counters.get("binding", 0) + counters.get("bindingError", 0))
        yield coturnCounter("stun_binding_response", "STUN Binding success responses",
                            counters.get("binding", 0))
        yield coturnCounter("stun_binding_error", "STUN Binding error responses",
                            counters.get("bindingError", 0))
        drops = {
            name: value for name, value in counters.items()
            if name.startswith("drop") and value
        }
        udpDrops = {
            name: value for name, value in udp.items()
            if name.startswith("drop") and isinstance(value, int) and value
        }
        relayed = up0 + down0
        yield coturnCounter("turn_packet_processed", "Relayed datagrams", relayed)
        yield coturnCounter("turn_packet_dropped", "Dropped datagrams and messages",
                            sum(drops.values()) + sum(udpDrops.values()))
        answered401 = counters.get("error401", 0)
        dropped401 = counters.get("dropUnauthenticatedRateLimited", 0)
        yield coturnCounter("turn_unauthenticated_401_requests",
                            "Requests that got or would have got an unauthenticated answer",
                            answered401 + dropped401)
        yield coturnCounter("turn_unauthenticated_401_responses", "401 responses sent",
                            answered401)
        yield coturnCounter("turn_unauthenticated_401_dropped_responses",
                            "Unauthenticated answers dropped by the per-source rate limit",
                            dropped401)
        yield coturnCounter("turn_udp_recvmmsg_calls", "recvmmsg() calls",
                            udp.get("recvmmsgCalls", 0))
        yield coturnCounter("turn_udp_recvmmsg_packets", "Datagrams received via recvmmsg()",
                            udp.get("datagramsReceived", 0))
        yield coturnCounter("turn_udp_sendmmsg_flushes", "Batch flushes",
                            udp.get("flushes", 0))
        yield coturnCounter("turn_udp_sendmmsg_datagrams", "Datagrams sent by batch flushes",
                            udp.get("datagramsSent", 0))
        yield coturnCounter("turn_udp_sendmmsg_gso_datagrams",
                            "Datagrams sent in UDP GSO sends", udp.get("gsoDatagrams", 0))

        # -- what operators ask coturn for ------------------------------------------------
        for name, help, series in (
            ("turn_allocations", "Live allocations", data["allocations"]),
            ("turn_permissions", "Permissions of live allocations", data["permissions"]),
            ("turn_channels", "Channels of live allocations", data["channels"]),
        ):
            family = GaugeMetricFamily(
                name, f"{help}, by client transport and relayed address family",
                labels=["transport", "family"],
            )
            for key, value in sorted(series.items()):
                family.add_metric(key.split("|"), value)
            yield family
        if data["allocationsByUser"] is not None:
            family = GaugeMetricFamily(
                "turn_user_allocations", "Live allocations per user", labels=["user"]
            )
            for user, count in sorted(data["allocationsByUser"].items()):
                family.add_metric([user], count)
            yield family
        ports = GaugeMetricFamily(
            "turn_relay_ports", "Relay ports of the range, used and free, per family",
            labels=["family", "state"],
        )
        for family, states in sorted(data["relayPorts"].items()):
            for state in ("used", "free"):
                ports.add_metric([family, state], states[state])
        yield ports
        dropped = CounterMetricFamily(
            "turn_drops", "Datagrams and messages dropped, by reason", labels=["reason"]
        )
        for name, value in sorted({**drops, **udpDrops}.items()):
            dropped.add_metric([name], value)
        yield dropped
        failures = CounterMetricFamily(
            "turn_auth_failures", "Requests refused or dropped for their credentials",
            labels=["reason"],
        )
        for name, reason in _AUTH_FAILURES.items():
            failures.add_metric([reason], counters.get(name, 0))
        yield failures
        errors = CounterMetricFamily(
            "turn_error_responses", "Error responses sent, by code", labels=["code"]
        )
        for name, value in sorted(counters.items()):
            if name.startswith("error") and name[5:].isdigit():
                errors.add_metric([name[5:]], value)
        yield errors
        sizes = udp.get("batchSizes")
        if sizes:
            buckets, cumulative, approximateSum = [], 0, 0.0
            for label, bound in _BATCH_BOUNDS.items():
                cumulative += sizes.get(label, 0)
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
                approximateSum += sizes.get(label, 0) * (bound if bound != float("inf") else 128)
            yield HistogramMetricFamily(
                "turn_udp_recvmmsg_batch_size",
                "Datagrams per recvmmsg() call (the sum counts each bucket at its bound)",
                buckets=buckets, sum_value=approximateSum,
            )
        gso = GaugeMetricFamily("turn_udp_gso_enabled", "Whether UDP GSO is in use (1) or not")
        gso.add_metric([], 1 if udp.get("gsoEnabled") else 0)
        yield gso
        iterations = data["iterations"]
        if iterations is not None:
            yield HistogramMetricFamily(
                "turn_reactor_iteration_seconds",
                "Time the reactor spent on the events of one iteration, from the end of its "
                "wait to the start of the next",
                buckets=iterations["buckets"], sum_value=iterations["sum"],
            )
        uptime = GaugeMetricFamily("turn_uptime_seconds", "Seconds since the server started")
        uptime.add_metric([], data["uptime"])
        yield uptime
        draining = GaugeMetricFamily("turn_draining", "Whether the server is draining (1)")
        draining.add_metric([], 1 if data["draining"] else 0)
        yield draining


class ReactorTimer:
    """
    Measures how long each reactor iteration spends on its events: the time from the end of
    the poller's wait to the end of the iteration.  Installs itself on a reactor with an
    epoll poller (C{_poller}) by wrapping C{doIteration} and the poller's C{poll}; two clock
    reads and a bisection per iteration, nothing per datagram.
    """

    def __init__(self) -> None:
        from bisect import bisect_left

        self._bisect = bisect_left
        self.counts = [0] * (len(ITERATION_BUCKETS) + 1)
        self.total = 0.0
        self._woke = 0.0

    @classmethod
    def install(cls, reactor: Any) -> Optional["ReactorTimer"]:
        """
        A timer on C{reactor}, or L{None} when it has no poller to wrap (not epoll).
        """
        poller = getattr(reactor, "_poller", None)
        if poller is None or not hasattr(poller, "poll"):
            return None
        timer = cls()
        reactor._poller = _TimedPoller(poller, timer)
        iterate = reactor.doIteration

        def doIteration(timeout: Any) -> None:
            timer._woke = 0.0
            iterate(timeout)
            if timer._woke:
                timer.observe(time.perf_counter() - timer._woke)

        reactor.doIteration = doIteration
        return timer

    def observe(self, seconds: float) -> None:
        self.counts[self._bisect(ITERATION_BUCKETS, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> Dict[str, Any]:
        cumulative, buckets = 0, []
        for bound, count in zip((*ITERATION_BUCKETS, float("inf")), self.counts):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return {"buckets": buckets, "sum": self.total}


class _TimedPoller:
    """
    An epoll object that notes when its wait ends.
    """

    def __init__(self, poller: Any, timer: ReactorTimer) -> None:
        self._poller = poller
        self._timer = timer

    def poll(self, *arguments: Any) -> Any:
        try:
            return self._poller.poll(*arguments)
        finally:
            self._timer._woke = time.perf_counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


class MetricsResource(Resource):
    """
    The exposition of a prometheus_client registry, rendered at each GET.
    """

    isLeaf = True

    def __init__(self, registry: Any) -> None:
        Resource.__init__(self)
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)
