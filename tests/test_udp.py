# -*- test-case-name: tests.test_udp -*-
"""
Tests for L{twisted_turn.udp}: the batching port and the batch scope, on real loopback sockets.

One mixin runs on both backends: the native L{BatchingPort} and Twisted's stock port (where
the scope is a no-op and every write goes out at once).  The ports run on a
L{MemoryReactorClock}, which watches nothing: the tests call C{doRead} themselves once the
socket is readable, so no test depends on the global reactor.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
from typing import Any, List, Optional, Tuple

from twisted.internet import error, udp as stockUdp
from twisted.internet.interfaces import IListeningPort, ISystemHandle, IUDPTransport
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_turn import udp
from twisted_turn._native import loadNative
from twisted_turn.testing import MemoryUDPReactor

native, _whyNot = loadNative({"TWISTED_TURN_NATIVE": "auto"})

Address = Tuple[str, int]


class Recorder(DatagramProtocol):
    """
    Records what it receives and runs C{onDatagram(self, data, addr)} for each datagram.
    """

    def __init__(self, onDatagram: Any = None) -> None:
        self.received: List[Tuple[bytes, Address]] = []
        self.onDatagram = onDatagram

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        self.received.append((data, addr))
        if self.onDatagram is not None:
            self.onDatagram(self, data, addr)


def numbered(number: int, size: int = 120) -> bytes:
    return number.to_bytes(4, "big") + b"\xab" * (size - 4)


class PortTestsMixin:
    """
    Behaviour both backends share.  C{options} picks the backend.
    """

    options: udp.BatchingOptions
    host = "127.0.0.1"
    family = socket.AF_INET

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.sockets: List[socket.socket] = []

    def listen(self, protocol: DatagramProtocol, options: Optional[udp.BatchingOptions] = None
               ) -> Any:
        options = options or self.options
        if options.batching:
            port = udp.listenUDP(self.reactor, 0, protocol, self.host, 65535, options)
        else:
            # What reactor.listenUDP does with a real reactor.
            port = stockUdp.Port(0, protocol, self.host, 65535, self.reactor)
            port.startListening()
        self.addCleanup(self.close, port)
        return port

    def close(self, port: Any) -> None:
        if getattr(port, "connected", False):
            port.stopListening()
            self.reactor.advance(0)

    def client(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((self.host, 0))
        sock.settimeout(5)
        self.addCleanup(sock.close)
        return sock

    def address(self, thing: Any) -> Address:
        if isinstance(thing, socket.socket):
            return thing.getsockname()[:2]
        host = thing.getHost()
        return (host.host, host.port)

    def deliver(self, port: Any, expected: int, protocol: Recorder) -> None:
        """
        Call C{doRead} until C{protocol} has C{expected} datagrams.
        """
        while len(protocol.received) < expected:
            readable, _, _ = select.select([port.fileno()], [], [], 5)
            self.assertTrue(readable, f"only {len(protocol.received)} of {expected} arrived")
            port.doRead()

    def receive(self, sock: socket.socket, count: int) -> List[bytes]:
        return [sock.recv(65536) for _ in range(count)]

    def assertNothingWaiting(self, sock: socket.socket) -> None:
        readable, _, _ = select.select([sock], [], [], 0.05)
        self.assertFalse(readable, "a datagram was sent")

    # -- the tests -----------------------------------------------------------------------------

    def test_interfaces(self) -> None:
        """
        The port provides what Twisted's UDP port provides.
        """
        port = self.listen(Recorder())
        verifyObject(IListeningPort, port)
        verifyObject(IUDPTransport, port)
        verifyObject(ISystemHandle, port)
        self.assertEqual(port.getHost().host, self.host)

    def test_echoKeepsOrder(self) -> None:
        """
        Datagrams written back while they are delivered arrive complete and in order, with the
        sender's address as the source.
        """
        protocol = Recorder(lambda p, data, addr: p.transport.write(data, addr))
        port = self.listen(protocol)
        sock = self.client()
        for number in range(200):
            sock.sendto(numbered(number), self.address(port))
        self.deliver(port, 200, protocol)
        self.assertEqual({addr for _, addr in protocol.received}, {self.address(sock)})
        self.assertEqual(self.receive(sock, 200), [numbered(n) for n in range(200)])

    def test_mixedSizesAndDestinations(self) -> None:
        """
        One delivery that writes runs of equal sizes, shorter tails, odd sizes and two
        destinations interleaved: each destination gets exactly its datagrams, in order.
        """
        first, second = self.client(), self.client()
        plan = []
        for n in range(90):
            size = (300, 300, 300, 120, 1400, 1400, 17, 1473, 3000)[n % 9]
            plan.append((numbered(n, size), first if n % 4 else second))

        def burst(p: Recorder, data: bytes, addr: Address) -> None:
            for payload, sock in plan:
                p.transport.write(payload, self.address(sock))

        protocol = Recorder(burst)
        port = self.listen(protocol)
        trigger = self.client()
        trigger.sendto(b"go", self.address(port))
        self.deliver(port, 1, protocol)
        for sock in (first, second):
            wanted = [payload for payload, s in plan if s is sock]
            self.assertEqual(self.receive(sock, len(wanted)), wanted)

    def test_manySameSize(self) -> None:
        """
        More than 64 equal datagrams to one destination in one scope all arrive, in order.
        """
        sock = self.client()
        protocol = Recorder(
            lambda p, data, addr: [p.transport.write(numbered(n), addr) for n in range(150)]
        )
        port = self.listen(protocol)
        sock.sendto(b"go", self.address(port))
        self.deliver(port, 1, protocol)
        self.assertEqual(self.receive(sock, 150), [numbered(n) for n in range(150)])

    def test_writeOutsideScope(self) -> None:
        """
        A write made outside any scope (from a timer, say) is sent at once.
        """
        port = self.listen(Recorder())
        sock = self.client()
        port.write(b"now", self.address(sock))
        self.assertEqual(sock.recv(100), b"now")

    def test_hostnameRefused(self) -> None:
        """
        As on the stock port, a host name is refused (it would need a blocking lookup), in or
        out of a scope.
        """
        port = self.listen(Recorder())
        self.assertRaises(error.InvalidAddressError, port.write, b"x", ("localhost", 9))
        with udp.batch:
            self.assertRaises(error.InvalidAddressError, port.write, b"x", ("localhost", 9))

    def test_protocolErrorDoesNotStopDelivery(self) -> None:
        """
        An exception from C{datagramReceived} is logged; the datagrams after it are still
        delivered and nothing escapes C{doRead}.
        """

        def explode(p: Recorder, data: bytes, addr: Address) -> None:
            if data == b"bad":
                raise ZeroDivisionError("boom")

        protocol = Recorder(explode)
        port = self.listen(protocol)
        sock = self.client()
        for data in (b"one", b"bad", b"two"):
            sock.sendto(data, self.address(port))
        self.deliver(port, 3, protocol)
        self.assertEqual([d for d, _ in protocol.received], [b"one", b"bad", b"two"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_largeDatagram(self) -> None:
        """
        A datagram of 60000 bytes is received whole and echoed whole.
        """
        protocol = Recorder(lambda p, data, addr: p.transport.write(data, addr))
        port = self.listen(protocol)
        sock = self.client()
        payload = bytes(range(256)) * 234 + b"tail"
        sock.sendto(payload, self.address(port))
        self.deliver(port, 1, protocol)
        self.assertEqual(protocol.received[0][0], payload)
        self.assertEqual(sock.recv(65536), payload)


class IPv6Mixin:
    host = "::1"
    family = socket.AF_INET6

    def setUp(self) -> None:
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            raise SkipTest("no IPv6 loopback here")
        super().setUp()  # type: ignore[misc]


class NativeMixin:
    def setUp(self) -> None:
        if native is None:
            # CI builds the module: there, its absence is a failure rather than a skip.
            if os.environ.get("CI"):
                raise AssertionError(f"the native module is not available: {_whyNot}")
            raise SkipTest(f"the native module is not available: {_whyNot}")
        self.options = udp.BatchingOptions(native=native)
        self.stats = native.lib.tt_stats
        super().setUp()  # type: ignore[misc]
        self.addCleanup(self.restoreGso)

    def restoreGso(self) -> None:
        # GSO switches off for the process on refusal; the next test starts with it on.
        self.stats.gso_enabled = 1
        native.lib.tt_inject.calls = 0


class StockPortTests(PortTestsMixin, SynchronousTestCase):
    """
    The stock Twisted port (no native module).
    """

    options = udp.STOCK

    def test_scopeIsNoOp(self) -> None:
        """
        On the stock port a write inside a scope goes out at once.
        """
        port = self.listen(Recorder())
        sock = self.client()
        with udp.batch:
            port.write(b"at once", self.address(sock))
            self.assertEqual(sock.recv(100), b"at once")

    def test_listenUDPUsesReactor(self) -> None:
        """
        L{udp.listenUDP} without batching is the reactor's C{listenUDP}.
        """
        reactor = MemoryUDPReactor()
        port = udp.listenUDP(reactor, 5000, Recorder(), "127.0.0.1", 1234, udp.STOCK)
        self.assertIs(reactor.udpPorts[("127.0.0.1", 5000)], port)
        self.assertEqual(reactor.maxPacketSizes[("127.0.0.1", 5000)], 1234)


class StockPortIPv6Tests(IPv6Mixin, StockPortTests):
    """
    The stock port on ::1.
    """


class NativePortTests(NativeMixin, PortTestsMixin, SynchronousTestCase):
    """
    The batching port, with recvmmsg, sendmmsg and GSO.
    """

    def counters(self) -> dict:
        return udp.udpCounters(self.options)

    def test_isBatchingPort(self) -> None:
        """
        L{udp.listenUDP} with the native module gives a L{udp.BatchingPort}, a stock port
        subclass, watched by the reactor.
        """
        port = self.listen(Recorder())
        self.assertIsInstance(port, udp.BatchingPort)
        self.assertIsInstance(port, stockUdp.Port)
        self.assertIn(port, self.reactor.readers)

    def test_nestedScopes(self) -> None:
        """
        Writes inside nested scopes queue until the outermost scope ends.
        """
        port = self.listen(Recorder())
        sock = self.client()
        udp.batch.begin()
        udp.batch.begin()
        port.write(b"queued", self.address(sock))
        udp.batch.end()
        self.assertNothingWaiting(sock)
        udp.batch.end()
        self.assertEqual(sock.recv(100), b"queued")
        self.assertRaises(RuntimeError, udp.batch.end)

    def test_gsoCoalesces(self) -> None:
        """
        A run of equal datagrams to one destination goes out as GSO sends of at most 64
        segments: 150 datagrams take 3, and a shorter last datagram joins the last one.  All
        three ride in one sendmmsg call.
        """
        sock = self.client()
        before = self.counters()
        sizes = [200] * 150 + [90]
        protocol = Recorder(
            lambda p, data, addr: [p.transport.write(numbered(n, s), addr)
                                   for n, s in enumerate(sizes)]
        )
        port = self.listen(protocol)
        sock.sendto(b"go", self.address(port))
        self.deliver(port, 1, protocol)
        self.assertEqual(self.receive(sock, 151), [numbered(n, s) for n, s in enumerate(sizes)])
        after = self.counters()
        self.assertEqual(after["gsoSends"] - before["gsoSends"], 3)
        self.assertEqual(after["gsoDatagrams"] - before["gsoDatagrams"], 151)
        self.assertEqual(after["sendmmsgCalls"] - before["sendmmsgCalls"], 1)

    def sendSizes(self, sizes: List[int]) -> Tuple[dict, dict]:
        """
        Write datagrams of C{sizes} to one client in one scope; check they all arrive in order
        and return the counters before and after.
        """
        sock = self.client()
        before = self.counters()
        port = self.listen(Recorder())
        with udp.batch:
            for n, size in enumerate(sizes):
                port.write(numbered(n, size), self.address(sock))
        self.assertEqual(
            self.receive(sock, len(sizes)), [numbered(n, s) for n, s in enumerate(sizes)]
        )
        return before, self.counters()

    def test_mismatchDoesNotCostBatch(self) -> None:
        """
        One datagram of another size in the middle of a run costs only itself: a shorter one
        ends the run it follows, and the run after it is a GSO send of its own, in the same
        system call.
        """
        before, after = self.sendSizes([100] * 20 + [30] + [100] * 20)
        self.assertEqual(after["gsoSends"] - before["gsoSends"], 2)
        self.assertEqual(after["gsoDatagrams"] - before["gsoDatagrams"], 41)
        self.assertEqual(after["sendmmsgCalls"] - before["sendmmsgCalls"], 1)

    def test_oversizedSegmentGoesAlone(self) -> None:
        """
        A datagram too large to be a GSO segment on a 1500-byte link (1473 bytes over IPv4,
        1453 over IPv6) goes as a datagram of its own; the runs around it stay GSO sends, and
        all of it leaves in one sendmmsg call, in order.
        """
        big = 1473 if self.family == socket.AF_INET else 1453
        before, after = self.sendSizes([100] * 20 + [big, big] + [100] * 20)
        self.assertEqual(after["gsoSends"] - before["gsoSends"], 2)
        self.assertEqual(after["gsoDatagrams"] - before["gsoDatagrams"], 40)
        self.assertEqual(after["sendmmsgCalls"] - before["sendmmsgCalls"], 1)

    def test_recvmmsgBatches(self) -> None:
        """
        Queued datagrams are read in batches of the batch size, counted in the histogram.
        """
        options = udp.BatchingOptions(native=native, batchSize=16)
        protocol = Recorder()
        port = self.listen(protocol, options)
        sock = self.client()
        for n in range(40):
            sock.sendto(numbered(n), self.address(port))
        before = self.counters()
        self.deliver(port, 40, protocol)
        after = self.counters()
        self.assertEqual(after["datagramsReceived"] - before["datagramsReceived"], 40)
        self.assertEqual(after["recvmmsgCalls"] - before["recvmmsgCalls"], 3)
        self.assertEqual(after["batchSizes"]["16-31"] - before["batchSizes"]["16-31"], 2)
        self.assertEqual(after["batchSizes"]["8-15"] - before["batchSizes"]["8-15"], 1)

    def test_budgetBoundsOneRead(self) -> None:
        """
        One C{doRead} takes at most the budget, leaving the rest for the next wakeup.
        """
        options = udp.BatchingOptions(native=native, batchSize=8, budget=24)
        protocol = Recorder()
        port = self.listen(protocol, options)
        sock = self.client()
        for n in range(50):
            sock.sendto(numbered(n), self.address(port))
        select.select([port.fileno()], [], [], 5)
        port.doRead()
        self.assertEqual(len(protocol.received), 24)
        self.deliver(port, 50, protocol)
        self.assertEqual([d for d, _ in protocol.received], [numbered(n) for n in range(50)])

    def test_gsoRefusedByKernel(self) -> None:
        """
        When the kernel refuses GSO (a socket with UDP checksums off, SO_NO_CHECK, gets EINVAL)
        GSO turns off for the process with one warning, and the same datagrams go out through
        sendmmsg: nothing is lost.
        """
        if self.family != socket.AF_INET:
            raise SkipTest("SO_NO_CHECK is IPv4 only")
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        sock = self.client()
        protocol = Recorder(
            lambda p, data, addr: [p.transport.write(numbered(n), addr) for n in range(30)]
        )
        port = self.listen(protocol)
        port.socket.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK
        before = self.counters()
        for _ in range(2):
            sock.sendto(b"go", self.address(port))
        self.deliver(port, 2, protocol)
        self.assertEqual(self.receive(sock, 60), [numbered(n) for n in range(30)] * 2)
        after = self.counters()
        self.assertFalse(after["gsoEnabled"])
        self.assertEqual(self.stats.gso_errno, errno.EINVAL)
        self.assertEqual(after["gsoSends"], before["gsoSends"])
        self.assertGreater(after["sendmmsgCalls"], before["sendmmsgCalls"])
        warnings = [e for e in events if "GSO was refused" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)

    def test_gsoRefusalAfterSingles(self) -> None:
        """
        When the refused GSO send follows datagrams that went out in the same call, those are
        not sent twice, and the run and what follows it arrive in order.
        """
        if self.family != socket.AF_INET:
            raise SkipTest("SO_NO_CHECK is IPv4 only")
        sock = self.client()
        port = self.listen(Recorder())
        sizes = [50, 60, 70] + [100] * 10 + [80, 90]
        before = self.counters()
        # The kernel sends the three singles, then refuses the run (checksums off: EINVAL).
        port.socket.setsockopt(socket.SOL_SOCKET, 11, 1)
        with udp.batch:
            for n, size in enumerate(sizes):
                port.write(numbered(n, size), self.address(sock))
        self.assertEqual(self.receive(sock, len(sizes)),
                         [numbered(n, s) for n, s in enumerate(sizes)])
        self.assertNothingWaiting(sock)
        self.assertFalse(self.stats.gso_enabled)
        self.assertEqual(self.counters()["datagramsSent"] - before["datagramsSent"], len(sizes))

    def test_gsoRefusalsTurnItOff(self) -> None:
        """
        EIO, EOPNOTSUPP and ENOPROTOOPT from a GSO send turn GSO off too, without loss.
        """
        sock = self.client()
        for refusal in (errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT):
            self.stats.gso_enabled = 1
            native.lib.tt_inject.calls = 1
            native.lib.tt_inject.error = refusal
            port = self.listen(Recorder())
            with udp.batch:
                for n in range(10):
                    port.write(numbered(n), self.address(sock))
            self.assertEqual(self.receive(sock, 10), [numbered(n) for n in range(10)])
            self.assertFalse(self.stats.gso_enabled)
            self.assertEqual(self.stats.gso_errno, refusal)
        self.flushLoggedErrors()

    def test_fullBuffersDropAndCount(self) -> None:
        """
        EAGAIN and ENOBUFS drop what could not be sent and count it under its reason; the
        reactor never waits, and the next flush sends normally.
        """
        sock = self.client()
        port = self.listen(Recorder())
        for reason, counter, gso in (
            (errno.EAGAIN, "dropEagain", True),
            (errno.ENOBUFS, "dropEnobufs", True),
            (errno.EAGAIN, "dropEagain", False),
            (errno.ENOBUFS, "dropEnobufs", False),
        ):
            before = self.counters()
            native.lib.tt_inject.calls = 1
            native.lib.tt_inject.error = reason
            with udp.batch:
                for n in range(5):
                    # Equal sizes make a GSO run; distinct sizes go through sendmmsg.
                    port.write(numbered(n, 100 if gso else 100 + n), self.address(sock))
            self.assertEqual(self.counters()[counter] - before[counter], 5)
            self.assertNothingWaiting(sock)
            with udp.batch:
                port.write(b"after", self.address(sock))
                port.write(b"after", self.address(sock))
            self.assertEqual(self.receive(sock, 2), [b"after", b"after"])

    def test_oneBadDestinationLosesOnlyItsDatagrams(self) -> None:
        """
        A send error of one destination (broadcast without SO_BROADCAST: EACCES) drops its
        datagrams, a run among them, counted; the others in the flush arrive, and GSO stays on.
        """
        if self.family != socket.AF_INET:
            raise SkipTest("an IPv4 broadcast destination")
        sock = self.client()
        port = self.listen(Recorder())
        before = self.counters()
        with udp.batch:
            port.write(b"a", self.address(sock))
            for _ in range(3):
                port.write(b"lost", ("255.255.255.255", 9))
            port.write(b"bb", self.address(sock))
        self.assertEqual(self.receive(sock, 2), [b"a", b"bb"])
        self.assertEqual(self.counters()["dropSendError"] - before["dropSendError"], 3)
        self.assertTrue(self.stats.gso_enabled)

    def test_portZeroRefused(self) -> None:
        """
        Port 0 is refused when written (the kernel would refuse it with EINVAL, which in a GSO
        send would switch GSO off); the native module never makes a GSO run of it either.
        """
        port = self.listen(Recorder())
        self.assertRaises(error.InvalidAddressError, port.write, b"x", (self.host, 0))
        with udp.batch:
            self.assertRaises(error.InvalidAddressError, port.write, b"x", (self.host, 0))
        ffi, lib = native.ffi, native.lib
        name = ffi.new("char[]", lib.TT_NAME_SIZE)
        host = socket.inet_pton(self.family, self.host)
        lib.tt_pack_name(self.family, host, 0, 0, name)
        lengths = ffi.new("uint32_t[]", [100, 100, 100])
        groups = ffi.new("uint32_t[]", [3])
        dropped = self.stats.drop_error
        lib.tt_send(port.fileno(), b"x" * 300, lengths, 3, ffi.buffer(name)[:], groups, 1,
                    lib.TT_SEND_GSO)
        self.assertEqual(self.stats.drop_error - dropped, 3)
        self.assertTrue(self.stats.gso_enabled)

    def test_queuedWriteTakesBytes(self) -> None:
        """
        Inside a scope, text is refused with TypeError as on the stock port, and a mutable
        buffer is sent as it was when written.
        """
        port = self.listen(Recorder())
        sock = self.client()
        buffer = bytearray(b"before")
        with udp.batch:
            self.assertRaises(TypeError, port.write, "text", self.address(sock))
            port.write(buffer, self.address(sock))
            buffer[:] = b"after!"
        self.assertEqual(sock.recv(100), b"before")

    def test_connectSendsQueuedFirst(self) -> None:
        """
        Connecting a port with datagrams queued sends those first.
        """
        port = self.listen(Recorder())
        sock = self.client()
        with udp.batch:
            port.write(b"queued", self.address(sock))
            port.connect(*self.address(sock))
            port.write(b"connected")
        self.assertEqual(self.receive(sock, 2), [b"queued", b"connected"])

    def test_closedDuringDelivery(self) -> None:
        """
        A port closed by its protocol during delivery is not read again.
        """
        errors = self.counters()["readError"]

        def close(p: Recorder, data: bytes, addr: Address) -> None:
            if len(p.received) == 1:
                p.transport.connectionLost()

        protocol = Recorder(close)
        port = self.listen(protocol, udp.BatchingOptions(native=native, batchSize=4))
        sock = self.client()
        for n in range(10):
            sock.sendto(numbered(n), self.address(port))
        select.select([port.fileno()], [], [], 5)
        port.doRead()
        self.assertEqual(len(protocol.received), 4)
        self.assertEqual(self.counters()["readError"], errors)

    def test_refusalLateInFullVector(self) -> None:
        """
        A GSO refusal after 250 single datagrams in the same flush loses nothing and keeps
        the order.
        """
        if self.family != socket.AF_INET:
            raise SkipTest("SO_NO_CHECK is IPv4 only")
        sock = self.client()
        port = self.listen(Recorder())
        port.socket.setsockopt(socket.SOL_SOCKET, 11, 1)
        sizes = [100 + n for n in range(250)] + [90] * 10
        with udp.batch:
            for n, size in enumerate(sizes):
                port.write(numbered(n, size), self.address(sock))
        self.assertEqual(self.receive(sock, len(sizes)),
                         [numbered(n, s) for n, s in enumerate(sizes)])
        self.assertFalse(self.stats.gso_enabled)

    def test_closedPortDropsQueue(self) -> None:
        """
        Datagrams queued on a port that closes before the flush are dropped and counted.
        """
        port = self.listen(Recorder())
        sock = self.client()
        before = self.counters()["dropClosed"]
        with udp.batch:
            port.write(b"x", self.address(sock))
            port.stopListening()
            self.reactor.advance(0)
        self.assertEqual(self.counters()["dropClosed"] - before, 1)
        self.assertNothingWaiting(sock)

    def test_recvfromWithSendmmsg(self) -> None:
        """
        With recvmmsg off, reads use the stock loop but writes still batch.
        """
        options = udp.BatchingOptions(native=native, recvmmsg=False)
        protocol = Recorder(
            lambda p, data, addr: [p.transport.write(numbered(n), addr) for n in range(10)]
        )
        port = self.listen(protocol, options)
        sock = self.client()
        before = self.counters()
        sock.sendto(b"go", self.address(port))
        self.deliver(port, 1, protocol)
        self.assertEqual(self.receive(sock, 10), [numbered(n) for n in range(10)])
        after = self.counters()
        self.assertEqual(after["recvmmsgCalls"], before["recvmmsgCalls"])
        self.assertEqual(after["gsoSends"] - before["gsoSends"], 1)

    def test_sendmmsgOffSendsAtOnce(self) -> None:
        """
        With sendmmsg off nothing queues: a write inside a scope is sent at once.
        """
        options = udp.BatchingOptions(native=native, sendmmsg=False, gso=False)
        port = self.listen(Recorder(), options)
        sock = self.client()
        with udp.batch:
            port.write(b"at once", self.address(sock))
            self.assertEqual(sock.recv(100), b"at once")

    def test_quietOpenAndClose(self) -> None:
        """
        Opening and closing a batching port logs nothing (a relay socket per allocation would
        otherwise make two lines each).
        """
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        protocol = Recorder()
        protocol.noisy = False
        port = self.listen(protocol)
        self.close(port)
        self.assertEqual(events, [])

    def test_adopt(self) -> None:
        """
        L{udp.adoptDatagramPort} runs a batching port on a socket made elsewhere, which stays
        the caller's to close.
        """
        made = socket.socket(self.family, socket.SOCK_DGRAM)
        made.bind((self.host, 0))
        made.setblocking(False)
        protocol = Recorder(lambda p, data, addr: p.transport.write(data, addr))
        port = udp.adoptDatagramPort(self.reactor, made, protocol, 65535, self.options)
        self.addCleanup(self.close, port)
        made.close()
        self.assertIsInstance(port, udp.BatchingPort)
        sock = self.client()
        sock.sendto(b"adopted", self.address(port))
        self.deliver(port, 1, protocol)
        self.assertEqual(sock.recv(100), b"adopted")


class NativePortIPv6Tests(IPv6Mixin, NativePortTests):
    """
    The batching port on ::1.
    """


class OptionsTests(SynchronousTestCase):
    """
    L{udp.BatchingOptions}.
    """

    def test_describe(self) -> None:
        """
        The start-up line says which port runs and why.
        """
        self.assertIn("stock", udp.BatchingOptions(nativeReason="TWISTED_TURN_NATIVE=off")
                      .describe())
        self.assertIn("TWISTED_TURN_NATIVE=off",
                      udp.BatchingOptions(nativeReason="TWISTED_TURN_NATIVE=off").describe())
        fake = type("Native", (), {"lib": type("Lib", (), {"tt_gso_compiled": lambda: 1})})
        self.assertEqual(
            udp.BatchingOptions(native=fake).describe(),
            "the batching UDP port: recvmmsg batches of 64, sendmmsg, UDP GSO",
        )
        self.assertFalse(udp.BatchingOptions(native=fake, recvmmsg=False, sendmmsg=False)
                         .batching)
        fake.lib.tt_gso_compiled = lambda: 0
        self.assertEqual(
            udp.BatchingOptions(native=fake).describe(),
            "the batching UDP port: recvmmsg batches of 64, sendmmsg, no GSO (not in this build)",
        )

    def test_kernelHasGso(self) -> None:
        """
        GSO is tried only on Linux 4.18 or later (older kernels ignore UDP_SEGMENT).
        """
        self.assertTrue(udp.kernelHasGso("4.18.0-25-generic"))
        self.assertTrue(udp.kernelHasGso("6.18.44-fc-v657"))
        self.assertTrue(udp.kernelHasGso("5.4.0"))
        self.assertFalse(udp.kernelHasGso("4.17.19"))
        self.assertFalse(udp.kernelHasGso("3.10.0-1160.el7.x86_64"))
        self.assertFalse(udp.kernelHasGso("unknown"))

    def test_stockCounters(self) -> None:
        """
        Without the native module the counters say so.
        """
        self.assertEqual(udp.udpCounters(udp.STOCK)["backend"], "stock")


class BoundedCacheTests(SynchronousTestCase):
    """
    The source and destination caches of the batching port stay at their bound.
    """

    def test_oldestForgotten(self):
        """
        A full cache forgets its oldest entry for each new one, keeping its size and its
        newest entries, so a flood of new addresses leaves memory flat.
        """
        from collections import OrderedDict

        self.patch(udp, "_CACHE_LIMIT", 3)
        cache: OrderedDict = OrderedDict()
        for key in range(10):
            udp._remember(cache, key, str(key))
            self.assertLessEqual(len(cache), 3)
        self.assertEqual(list(cache.items()), [(7, "7"), (8, "8"), (9, "9")])


class SocketBufferTests(SynchronousTestCase):
    """
    L{udp.setBufferSize}, L{udp.bufferSizes} and the kernel drop counters, on real sockets.
    """

    def port(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.addCleanup(sock.close)

        class Port:
            pass

        port = Port()
        port.socket = sock
        return port

    def test_setsBothBuffers(self):
        """
        Both buffers get the size asked for (past net.core.rmem_max where the process may),
        and 0 leaves them as they are.
        """
        port = self.port()
        before = udp.bufferSizes(port)
        self.assertEqual(udp.setBufferSize(port, 0), before)
        sizes = udp.setBufferSize(port, 1 << 20)
        try:
            with open("/proc/sys/net/core/rmem_max") as f:
                ceiling = int(f.read())
        except OSError:
            ceiling = 0
        if os.geteuid() == 0 or ceiling >= 1 << 20:
            self.assertEqual(sizes, (1 << 20, 1 << 20))
        else:
            self.assertGreaterEqual(sizes[0], before[0])

    def test_fallsBackWithoutPrivilege(self):
        """
        Where SO_RCVBUFFORCE is refused, the plain option is set instead.
        """
        calls = []

        class Refusing:
            def setsockopt(self, level, option, value):
                calls.append(option)
                if option in (udp._SO_RCVBUFFORCE, udp._SO_SNDBUFFORCE):
                    raise PermissionError(1, "Operation not permitted")

            def getsockopt(self, level, option):
                return 425984

        class Port:
            socket = Refusing()

        self.assertEqual(udp.setBufferSize(Port(), 1 << 20), (212992, 212992))
        self.assertEqual(
            calls,
            [udp._SO_RCVBUFFORCE, socket.SO_RCVBUF, udp._SO_SNDBUFFORCE, socket.SO_SNDBUF],
        )

    def test_noSocket(self):
        """
        A transport without a socket (a test's fake) is left alone.
        """
        self.assertIsNone(udp.setBufferSize(object(), 1 << 20))
        self.assertIsNone(udp.bufferSizes(object()))

    def test_kernelDropsCounted(self):
        """
        Datagrams the kernel drops at a full receive queue show in L{udp.socketDrops} and in
        L{udp.kernelDrops} for a tracked port, and stay counted after the port is released.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("SO_MEMINFO is Linux's")
        port = self.port()
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        before = udp.kernelDrops()
        udp.track(port)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for _ in range(200):
            sender.sendto(b"x" * 500, port.socket.getsockname())
        dropped = udp.socketDrops(port.socket)
        self.assertGreater(dropped, 0)
        self.assertEqual(udp.kernelDrops() - before, dropped)
        self.assertEqual(udp.udpCounters()["dropKernelQueue"] - before, dropped)
        udp.release(port)
        port.socket.close()
        self.assertEqual(udp.kernelDrops() - before, dropped)
        self.assertEqual(udp.socketDrops(object()), 0)
