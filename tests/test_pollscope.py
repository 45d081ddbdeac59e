# -*- test-case-name: tests.test_pollscope -*-
"""
Tests for L{twisted_turn.pollscope}: the reactor whose batch scope spans a poll iteration.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Any, List

from twisted.application.reactors import getReactorTypes
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn import udp
from twisted_turn._native import loadNative
from twisted_turn.pollscope import PollScopeReactor

native, _whyNot = loadNative({})


class Forwarder(DatagramProtocol):
    """
    Forwards every datagram through another port to a fixed destination.
    """

    noisy = False

    def __init__(self, out: Any, destination: Any) -> None:
        self.out = out
        self.destination = destination

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.out.write(data, self.destination)


class PluginTests(SynchronousTestCase):
    def test_pluginNamed(self) -> None:
        """
        twistd knows the reactor as C{turnepoll}.
        """
        [found] = [r for r in getReactorTypes() if r.shortName == "turnepoll"]
        self.assertEqual(found.moduleName, "twisted_turn.pollscope")


class PollScopeTests(SynchronousTestCase):
    """
    One scope per poll iteration: writes made by every port read in it flush together.
    """

    reactorFactory: Any = PollScopeReactor
    flushesPerIteration = 1

    def setUp(self) -> None:
        if native is None:
            if os.environ.get("CI"):
                raise AssertionError(_whyNot)
            raise SkipTest(_whyNot)
        self.reactor = self.reactorFactory()
        self.addCleanup(self.closeReactor)
        self.options = udp.BatchingOptions(native=native)

    def closeReactor(self) -> None:
        for reader in list(self.reactor.getReaders()):
            if isinstance(reader, udp.BatchingPort):
                reader.stopListening()
        self.reactor.runUntilCurrent()
        self.reactor._poller.close()
        self.reactor.waker.connectionLost(None)

    def test_oneFlushPerIteration(self) -> None:
        """
        Datagrams read from two ports in one poll iteration and forwarded through a third
        port to one destination leave in one flush, as one GSO send.
        """
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        self.addCleanup(sink.close)
        out = udp.listenUDP(self.reactor, 0, DatagramProtocol(), "127.0.0.1", 65535,
                            self.options)
        inputs = [
            udp.listenUDP(self.reactor, 0, Forwarder(out, sink.getsockname()), "127.0.0.1",
                          65535, self.options)
            for _ in range(2)
        ]
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for port in inputs:
            for n in range(10):
                sender.sendto(b"%02d" % n + b"." * 98, ("127.0.0.1", port.getHost().port))
        # Both inputs readable before the one iteration that reads them.
        for port in inputs:
            select.select([port.fileno()], [], [], 5)
        stats = native.lib.tt_stats
        flushes, gsoSends = stats.flushes, stats.gso_sends
        self.reactor.doIteration(1)
        received: List[bytes] = [sink.recv(200) for _ in range(20)]
        self.assertEqual(len(received), 20)
        self.assertEqual(stats.flushes - flushes, self.flushesPerIteration)
        self.assertEqual(stats.gso_sends - gsoSends, self.flushesPerIteration)
        self.assertEqual(udp.batch.depth, 0)


class PerPortScopeTests(PollScopeTests):
    """
    The contrast: on the stock epoll reactor each port's C{doRead} is its own scope, so the
    same iteration flushes once per input port.
    """

    reactorFactory = EPollReactor
    flushesPerIteration = 2


class DispatchTests(SynchronousTestCase):
    """
    What L{PollScopeReactor} does besides batching ports.
    """

    def setUp(self) -> None:
        if native is None:
            if os.environ.get("CI"):
                raise AssertionError(_whyNot)
            raise SkipTest(_whyNot)
        self.reactor = PollScopeReactor()
        self.addCleanup(PollScopeTests.closeReactor, self)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.sender.close)

    def test_stockPortServed(self) -> None:
        """
        Other readers (a stock Twisted UDP port here) are served as by the epoll reactor.
        """
        received: List[bytes] = []

        class Collect(DatagramProtocol):
            noisy = False

            def datagramReceived(self, data: bytes, addr: Any) -> None:
                received.append(data)

        port = self.reactor.listenUDP(0, Collect(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.sender.sendto(b"stock", ("127.0.0.1", port.getHost().port))
        select.select([port.fileno()], [], [], 5)
        self.reactor.doIteration(1)
        self.assertEqual(received, [b"stock"])

    def test_escapedErrorLoggedPortKept(self) -> None:
        """
        An exception escaping a batching port's C{doRead} is logged; the port keeps being
        read and the scope is closed.
        """
        port = udp.listenUDP(self.reactor, 0, DatagramProtocol(), "127.0.0.1", 65535,
                             udp.BatchingOptions(native=native))

        def broken() -> None:
            raise OSError("broken")

        port.doRead = broken
        self.sender.sendto(b"x", ("127.0.0.1", port.getHost().port))
        select.select([port.fileno()], [], [], 5)
        self.reactor.doIteration(1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIn(port, self.reactor.getReaders())
        self.assertEqual(udp.batch.depth, 0)
