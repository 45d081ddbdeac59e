# -*- test-case-name: tests.test_bench -*-
"""
Tests for L{twisted_turn.bench}: the C load generator and echo peer on real loopback sockets,
the TURN control client, the statistics, the /proc readers, and one short run through a real
C{twistd turn}.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.auth import PasswordAlgorithm, longTermKey
from twisted_turn.bench import __main__ as cli
from twisted_turn.bench.client import (
    CHANNEL_BASE,
    TurnClient,
    TurnError,
    checkLoopback,
    loadSocket,
    openClients,
)
from twisted_turn.bench.load import (
    CHANNEL_HEADER,
    MAX_PAYLOAD,
    PAYLOAD_HEADER,
    EchoPeer,
    Generator,
    decodeFrame,
)
from twisted_turn.bench.runner import LOADS, Load, measureRound
from twisted_turn.bench.servers import (
    VARIANTS,
    ServerProcess,
    cpuSeconds,
    parseCpuSeconds,
    parseUdpDrops,
    udpDrops,
)
from twisted_turn.bench.stats import (
    RoundResult,
    Summary,
    formatTable,
    pairedRatios,
    summarize,
    summarizeVariant,
)
from twisted_turn.stun.attributes import (
    ErrorCode,
    Nonce,
    Realm,
    Username,
    XorRelayedAddress,
)
from twisted_turn.stun.integrity import verifyIntegrity
from twisted_turn.stun.message import MessageClass, decodeMessage, encodeMessage

try:
    from twisted_turn._turnio import ffi, lib

    _nativeSkip: Optional[str] = None if hasattr(lib, "tb_gen_new") else "no load generator"
except ImportError as e:
    ffi = lib = None
    _nativeSkip = f"the native module is not built ({e})"

_procSkip = None if os.path.exists("/proc/self/stat") else "no /proc"


def _connectedPair() -> Tuple[socket.socket, socket.socket]:
    """
    A client socket (as the generator uses it) connected to a plain socket standing in for a
    server.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    client = loadSocket()
    client.connect(server.getsockname())
    return client, server


def _roundResult(
    variant: str, number: int, forwarded: int, cpu: float, window: float = 2.0,
    sent: int = 1000, received: int = 990,
) -> RoundResult:
    return RoundResult(
        variant=variant, load="flood", round=number, window=window, uplink=forwarded // 2,
        downlink=forwarded - forwarded // 2, serverCpu=cpu, loadCpu=0.5,
        generator={"sent": sent, "received": received, "rttCount": received,
                   "rttMedianNs": 250_000, "rttP99Ns": 1_500_000},
    )


class FrameTests(SynchronousTestCase):
    """
    The ChannelData frames the C generator sends.
    """

    skip = _nativeSkip

    def test_frameLayout(self):
        """
        C{tb_frame} writes the channel and payload length (the ChannelData header), then the
        sequence number, client index and send time, big-endian, then filler up to the payload
        size; the frame is the header plus the payload.
        """
        buf = ffi.new("char[]", 2048)
        size = lib.tb_frame(buf, 2048, 0x4001, 7, 3, 0x0102030405060708, 40)
        self.assertEqual(size, CHANNEL_HEADER + 40)
        data = ffi.buffer(buf, size)[:]
        self.assertEqual(
            struct.unpack("!HHIIQ", data[:20]), (0x4001, 40, 7, 3, 0x0102030405060708)
        )
        self.assertEqual(decodeFrame(data)["sentNs"], 0x0102030405060708)

    def test_frameBounds(self):
        """
        A payload shorter than its header, or a frame larger than the buffer, is refused (0).
        """
        buf = ffi.new("char[]", 64)
        self.assertEqual(lib.tb_frame(buf, 64, 0x4000, 0, 0, 0, PAYLOAD_HEADER - 1), 0)
        self.assertEqual(lib.tb_frame(buf, 64, 0x4000, 0, 0, 0, 61), 0)
        self.assertEqual(lib.tb_frame(buf, 64, 0x4000, 0, 0, 0, 60), 64)

    def test_generatorSendsFrames(self):
        """
        The generator sends, on each client's connected socket, ChannelData frames for that
        client's channel: sequence numbers from 0, the client's index, a CLOCK_MONOTONIC send
        time, the payload sizes cycled, each client starting at its own index in the cycle.
        """
        pairs = [_connectedPair() for _ in range(2)]
        before = time.monotonic_ns()
        generator = Generator(
            [client for client, _ in pairs], [0x4000, 0x4005], (20, 33, 50),
            rate=1000, count=4, duration=1.0, drain=0.0, gso=False,
        )
        result = generator.run()
        generator.close()
        after = time.monotonic_ns()
        self.assertEqual(result.sent, 8)
        self.assertEqual(result.received, 0)
        self.assertEqual(result.loss, 1.0)
        for index, (client, server) in enumerate(pairs):
            frames = [server.recv(4096) for _ in range(4)]
            decoded = [decodeFrame(frame) for frame in frames]
            self.assertEqual([d["channel"] for d in decoded], [[0x4000, 0x4005][index]] * 4)
            self.assertEqual([d["seq"] for d in decoded], [0, 1, 2, 3])
            self.assertEqual([d["client"] for d in decoded], [index] * 4)
            sizes = [20, 33, 50][index:] + [20, 33, 50][:index]
            self.assertEqual([d["length"] for d in decoded], (sizes * 2)[:4])
            self.assertEqual([len(f) - CHANNEL_HEADER for f in frames], (sizes * 2)[:4])
            for d in decoded:
                self.assertTrue(before <= d["sentNs"] <= after)
            client.close()
            server.close()

    def test_generatorGsoFrames(self):
        """
        A flood of equal-size frames, sent as GSO when the kernel takes it, still arrives as
        one datagram per frame, in sequence.
        """
        client, server = _connectedPair()
        generator = Generator([client], [0x4000], (120,), count=100, duration=1.0, drain=0.0,
                              gso=True)
        result = generator.run()
        generator.close()
        self.assertEqual(result.sent, 100)
        seqs = []
        for _ in range(100):
            frame = server.recv(4096)
            self.assertEqual(len(frame), CHANNEL_HEADER + 120)
            seqs.append(decodeFrame(frame)["seq"])
        self.assertEqual(seqs, list(range(100)))
        client.close()
        server.close()

    def test_badConfiguration(self):
        """
        Payload sizes outside what the frame holds are refused before anything runs.
        """
        client, server = _connectedPair()
        self.addCleanup(client.close)
        self.addCleanup(server.close)
        self.assertRaises(ValueError, Generator, [client], [0x4000], (PAYLOAD_HEADER - 1,))
        self.assertRaises(ValueError, Generator, [client], [0x4000, 0x4001], (100,))

    def test_onlyLoopback(self):
        """
        The generator refuses a socket connected anywhere but a loopback address.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.connect(("192.0.2.1", 9))
        self.assertRaises(ValueError, Generator, [sock], [0x4000])


class EchoPeerTests(SynchronousTestCase):
    """
    The C echo peer, on real loopback sockets.
    """

    skip = _nativeSkip

    def setUp(self):
        self.peer = EchoPeer().start()
        self.addCleanup(self.peer.stop)

    def test_echoes(self):
        """
        Every datagram goes back to its source unchanged, and the peer counts them.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(5)
        sent = [b"x", b"hello" * 50, os.urandom(1400)]
        for data in sent:
            sock.sendto(data, self.peer.address)
        received = [sock.recvfrom(4096) for _ in sent]
        self.assertEqual([data for data, _ in received], sent)
        self.assertEqual({source for _, source in received}, {self.peer.address})
        deadline = time.monotonic() + 5
        while self.peer.counters()["sent"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        counters = self.peer.counters()
        self.assertEqual((counters["received"], counters["sent"]), (3, 3))
        self.assertEqual(counters["receivedBytes"], sum(map(len, sent)))

    def test_echoesToEachSource(self):
        """
        Datagrams from several sources, of equal and different sizes (GSO runs and single
        sends), each go back to their own source, in order.
        """
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for sock in socks:
            self.addCleanup(sock.close)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
        expected: List[List[bytes]] = [[], []]
        for i in range(40):
            which = (i // 10) % 2
            data = struct.pack("!I", i) + bytes(100 if i % 7 else 30)
            socks[which].sendto(data, self.peer.address)
            expected[which].append(data)
        for sock, wanted in zip(socks, expected):
            self.assertEqual([sock.recv(4096) for _ in wanted], wanted)

    def test_generatorThroughPeer(self):
        """
        The generator's clients connected straight to the echo peer get every frame back:
        no loss, nothing unexpected, one round trip time per echo.
        """
        socks = [loadSocket() for _ in range(2)]
        for sock in socks:
            self.addCleanup(sock.close)
            sock.connect(self.peer.address)
        generator = Generator(socks, [0x4000, 0x4001], (120,), inflight=16, count=300,
                              duration=5.0, drain=1.0)
        result = generator.run()
        generator.close()
        self.assertEqual(result.sent, 600)
        self.assertEqual(result.received, 600)
        self.assertEqual(result.loss, 0.0)
        self.assertEqual((result.bad, result.sendDrops, result.sendErrors), (0, 0, 0))
        self.assertEqual(result.rttCount, 600)
        self.assertTrue(0 < result.rttMinNs <= result.rttMedianNs * 1.04)
        self.assertTrue(result.rttMedianNs <= result.rttP99Ns <= result.rttMaxNs * 1.04)
        # Done long before the duration: the count was reached and every echo was in.
        self.assertLess(result.totalSeconds, 4.0)

    def test_extremeSizes(self):
        """
        The smallest payload (just its header) and the largest make the round trip intact.
        """
        sock = loadSocket()
        self.addCleanup(sock.close)
        sock.connect(self.peer.address)
        generator = Generator([sock], [0x4000], (PAYLOAD_HEADER, MAX_PAYLOAD), inflight=8,
                              count=40, duration=5.0, drain=1.0)
        result = generator.run()
        generator.close()
        self.assertEqual((result.sent, result.received, result.bad), (40, 40, 0))
        self.assertEqual(result.receivedBytes, 20 * (2 * CHANNEL_HEADER + PAYLOAD_HEADER
                                                     + MAX_PAYLOAD))

    def test_pacedRate(self):
        """
        At a fixed rate the generator sends about rate times duration datagrams per client.
        """
        sock = loadSocket()
        self.addCleanup(sock.close)
        sock.connect(self.peer.address)
        generator = Generator([sock], [0x4000], (60,), rate=500, duration=0.4, drain=0.3,
                              tick=0.0002)
        result = generator.run()
        generator.close()
        self.assertTrue(180 <= result.sent <= 201, result.sent)
        self.assertEqual(result.received, result.sent)


class HistogramTests(SynchronousTestCase):
    """
    The round-trip histogram of the generator.
    """

    skip = _nativeSkip

    def test_exactBelow32(self):
        """
        Values below 32 ns have a bucket each.
        """
        for value in range(32):
            self.assertEqual(lib.tb_hist_index(value), value)
            self.assertEqual(lib.tb_hist_lower(value), value)

    def test_relativeError(self):
        """
        Every value falls in a bucket whose lower bound is at most the value and within 1/32
        of it.
        """
        for value in [32, 33, 63, 64, 65, 1000, 123456, 10**9, 3 * 10**11]:
            index = lib.tb_hist_index(value)
            lower = lib.tb_hist_lower(index)
            upper = lib.tb_hist_lower(index + 1)
            self.assertTrue(lower <= value < upper, (value, lower, upper))
            self.assertLessEqual(upper - lower, lower / 32 + 1)

    def test_quantiles(self):
        """
        The median and 99th percentile of a known distribution come out within the bucket
        resolution; an empty histogram gives 0.
        """
        hist = ffi.new("uint64_t[]", lib.TB_HIST_BUCKETS)
        self.assertEqual(lib.tb_hist_quantile(hist, 0.5), 0)
        for value in range(1, 1001):
            hist[lib.tb_hist_index(value * 1000)] += 1
        self.assertLess(abs(lib.tb_hist_quantile(hist, 0.5) / 500_000 - 1), 0.035)
        self.assertLess(abs(lib.tb_hist_quantile(hist, 0.99) / 990_000 - 1), 0.035)


class StatisticsTests(SynchronousTestCase):
    """
    L{twisted_turn.bench.stats}.
    """

    def test_summarize(self):
        """
        The summary is the median (the mean of the middle two for an even count), the min and
        the max; missing values are skipped; nothing gives L{None}.
        """
        self.assertEqual(summarize([3, 1, 2]), Summary(2, 1, 3, 3))
        self.assertEqual(summarize([4, 1, 3, 2]), Summary(2.5, 1, 4, 4))
        self.assertEqual(summarize([None, 5.0, None]), Summary(5, 5, 5, 1))
        self.assertIsNone(summarize([]))
        self.assertIsNone(summarize([None]))

    def test_roundMetrics(self):
        """
        A round's rates are over its window; datagrams per CPU-second divide by the server's
        CPU time, and are L{None} without any; loss is what did not come back.
        """
        r = _roundResult("gso", 1, forwarded=400_000, cpu=1.6, window=2.0)
        self.assertEqual(r.forwarded, 400_000)
        self.assertEqual(r.forwardedPerSecond, 200_000)
        self.assertEqual(r.cpuPerSecond, 0.8)
        self.assertEqual(r.perCpuSecond, 250_000)
        self.assertEqual(r.loadCpuPerSecond, 0.25)
        self.assertAlmostEqual(r.loss, 0.01)
        self.assertEqual((r.rttMedianUs, r.rttP99Us), (250, 1500))
        self.assertIsNone(_roundResult("gso", 1, forwarded=10, cpu=0.0).perCpuSecond)
        self.assertEqual(_roundResult("x", 1, 10, 1.0, sent=0, received=0).loss, 0.0)

    def test_pairedRatios(self):
        """
        Ratios pair each round with the reference's round of the same number; a round missing
        from the reference is left out, one without a value gives L{None}.
        """
        mine = [_roundResult("gso", n, f, 1.0) for n, f in [(1, 300), (2, 400), (3, 500)]]
        stock = [_roundResult("stock", n, f, c) for n, f, c in [(1, 100, 1.0), (2, 100, 0.0)]]
        self.assertEqual(pairedRatios(mine, stock), [3.0, None])

    def test_summarizeVariant(self):
        """
        A variant's summary has the median, min and max of each metric over its rounds, and
        of its paired ratios to stock and to coturn.
        """
        stock = [_roundResult("stock", n, f, 1.0) for n, f in [(1, 100), (2, 110), (3, 90)]]
        coturn = [_roundResult("coturn", n, 200, 1.0) for n in (1, 2, 3)]
        gso = [_roundResult("gso", n, f, 1.0) for n, f in [(1, 400), (2, 330), (3, 450)]]
        summary = summarizeVariant(gso, stock, coturn)
        self.assertEqual(summary["perCpuSecond"], Summary(400, 330, 450, 3))
        self.assertEqual(summary["forwardedPerSecond"], Summary(200, 165, 225, 3))
        self.assertEqual(summary["xStock"], Summary(4.0, 3.0, 5.0, 3))
        self.assertEqual(summary["xCoturn"], Summary(2.0, 1.65, 2.25, 3))
        self.assertIsNone(summarizeVariant(gso)["xStock"])

    def test_table(self):
        """
        The table has a header, a line of medians per variant and a line of min-max below it.
        """
        stock = [_roundResult("stock", n, 100_000 * n, 1.0) for n in (1, 2, 3)]
        table = formatTable({"stock": summarizeVariant(stock, stock)})
        lines = table.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("variant"))
        self.assertIn("fwd/cpu-s", lines[0])
        self.assertEqual(lines[1].split()[:4], ["stock", "100k", "0.50", "200k"])
        self.assertIn("50k-150k", lines[2])


class ProcTests(SynchronousTestCase):
    """
    Reading CPU time and socket drops from /proc.
    """

    skip = _procSkip

    def test_parseCpuSeconds(self):
        """
        User plus system time are fields 14 and 15, counted after the command name, which may
        hold spaces and parentheses.
        """
        stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 7 0 0"
        self.assertEqual(parseCpuSeconds(stat, ticks=100), 3.0)

    def test_cpuSecondsOfThisProcess(self):
        """
        The CPU time read for this process grows with work, and agrees with L{os.times}.
        """
        before = cpuSeconds(os.getpid())
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        after = cpuSeconds(os.getpid())
        times = os.times()
        self.assertGreaterEqual(after - before, 0.2)
        self.assertLess(abs(after - (times.user + times.system)), 0.1)

    def test_parseUdpDrops(self):
        """
        The drops column is summed over the rows of the given socket inodes.
        """
        table = (
            "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
            "  timeout inode ref pointer drops\n"
            " 1: 0100007F:9A02 0100007F:8194 01 00000000:00000000 00:00000000 00000000"
            "     0        0 1001 2 000000002bbd7708 7\n"
            " 2: 0100007F:9D14 00000000:0000 07 00000000:00000000 00:00000000 00000000"
            "     0        0 1002 2 000000006aa9d5db 5\n"
            " 3: 0100007F:9D15 00000000:0000 07 00000000:00000000 00:00000000 00000000"
            "     0        0 1003 2 000000006aa9d5db 11\n"
        )
        self.assertEqual(parseUdpDrops(table, {1001, 1003}), 18)
        self.assertEqual(parseUdpDrops(table, set()), 0)

    def test_udpDropsOfThisProcess(self):
        """
        The drops of this process's own sockets read as a count (none dropped here).
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        self.assertIsInstance(udpDrops(os.getpid()), int)
        self.assertEqual(udpDrops(2**22 + 12345), 0)


class _FakeTurnServer:
    """
    A one-request-at-a-time STUN responder in a thread: it answers an unauthenticated Allocate
    with 401, the first authenticated one with 438 and a new nonce, and the next (checking its
    MESSAGE-INTEGRITY with the long-term key) with success.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.seen: List[Tuple[Optional[str], Optional[str], Optional[bool]]] = []
        self.key = longTermKey("bench", "fake", "secret", PasswordAlgorithm.MD5)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        testCase.addCleanup(self.sock.close)

    def _serve(self) -> None:
        for step in range(3):
            try:
                data, source = self.sock.recvfrom(4096)
            except OSError:
                return
            request = decodeMessage(data)
            nonce = request.get(Nonce)
            username = request.get(Username)
            self.seen.append((
                username.value if username else None,
                nonce.value if nonce else None,
                verifyIntegrity(request, self.key) if nonce else None,
            ))
            if step == 0:
                reply = encodeMessage(
                    request.method, MessageClass.ERROR, request.transactionId,
                    [ErrorCode(401, "Unauthorized"), Realm("fake"), Nonce("n1")])
            elif step == 1:
                reply = encodeMessage(
                    request.method, MessageClass.ERROR, request.transactionId,
                    [ErrorCode(438, "Stale Nonce"), Realm("fake"), Nonce("n2")])
            else:
                reply = encodeMessage(
                    request.method, MessageClass.SUCCESS, request.transactionId,
                    [XorRelayedAddress("127.0.0.1", 50000)], integrityKey=self.key)
            self.sock.sendto(reply, source)


class ClientTests(SynchronousTestCase):
    """
    The control-plane client.
    """

    def test_credentials(self):
        """
        The client answers 401 with the realm and nonce given and a MESSAGE-INTEGRITY made
        with the long-term key, and 438 by retrying with the new nonce.
        """
        server = _FakeTurnServer(self)
        client = TurnClient(server.port, "bench", "secret", timeout=5)
        self.addCleanup(client.close, deallocate=False)
        self.assertEqual(client.allocate(), ("127.0.0.1", 50000))
        server.thread.join(5)
        self.assertEqual(
            server.seen, [(None, None, None), ("bench", "n1", True), ("bench", "n2", True)]
        )

    def test_noServer(self):
        """
        Without an answer the request fails with L{TurnError} after its timeout.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.addCleanup(sock.close)
        client = TurnClient(port, "bench", "secret", timeout=0.3)
        self.addCleanup(client.close, deallocate=False)
        self.assertRaises(TurnError, client.allocate)

    def test_loopbackOnly(self):
        """
        Only IPv4 loopback addresses pass.
        """
        self.assertEqual(checkLoopback("127.0.0.1"), "127.0.0.1")
        self.assertEqual(checkLoopback("127.1.2.3"), "127.1.2.3")
        for host in ["10.0.0.1", "::1", "localhost", "0.0.0.0", "127.1"]:
            self.assertRaises(ValueError, checkLoopback, host)


class CommandTests(SynchronousTestCase):
    """
    C{python -m twisted_turn.bench}.
    """

    def test_list(self):
        """
        C{list} names every variant and every load.
        """
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(cli.main(["list"]), 0)
        for name in list(VARIANTS) + list(LOADS):
            self.assertIn(name, out.getvalue())

    def test_unknownVariant(self):
        """
        An unknown variant name is a usage error that lists the known ones.
        """
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertRaises(SystemExit, cli.main, ["run", "--variants", "stock,fast"])
        self.assertIn("coturn", err.getvalue())


    def test_baselineVariant(self):
        """
        --baseline names another checkout, run with the defaults as the variant "baseline";
        a directory without the package is refused with its name.
        """
        from twisted_turn.bench.runner import baselineVariant
        from twisted_turn.bench.servers import PACKAGE_ROOT

        variant = baselineVariant(PACKAGE_ROOT)
        self.assertEqual((variant.name, variant.packageRoot), ("baseline", PACKAGE_ROOT))
        self.assertEqual(variant.turnOptions, ())
        empty = Path(tempfile.mkdtemp(prefix="turnbench-baseline-"))
        self.addCleanup(shutil.rmtree, empty, ignore_errors=True)
        error = self.assertRaises(ValueError, baselineVariant, empty)
        self.assertIn(str(empty), str(error))
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(cli.main(["run", "--baseline", str(empty), "--variants", "gso"]), 2)
        self.assertIn("no twisted_turn package", err.getvalue())


class EndToEndTests(SynchronousTestCase):
    """
    One short load through a real C{twistd turn}.
    """

    skip = _nativeSkip or _procSkip

    def test_smokeRun(self):
        """
        A one-client flood of about a second through our server on Twisted's stock port:
        datagrams come back in both directions with low loss, and the round is measured (the
        server's CPU, the forwarding rate, round-trip times).
        """
        workdir = Path(tempfile.mkdtemp(prefix="turnbench-test-"))
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        server = ServerProcess(VARIANTS["stock"], workdir, realm="bench", user="bench",
                               password="secret", relayPorts=10, cpu=None)
        self.addCleanup(server.stop)
        peer = EchoPeer().start()
        self.addCleanup(peer.stop)
        clients = openClients(1, server.port, "bench", "secret", peer.address)
        self.addCleanup(lambda: [c.close() for c in clients])
        self.assertEqual(clients[0].channel, CHANNEL_BASE)
        load = Load("smoke", "smoke", 1, 0.0, (120,), inflight=32)
        result = measureRound(server, peer, clients, load, variant="stock", round=1,
                              duration=1.0, drain=0.5)
        generator = result.generator
        self.assertGreater(generator["received"], 500)
        self.assertLess(result.loss, 0.05)
        self.assertEqual(generator["bad"], 0)
        self.assertGreater(result.uplink, 0)
        self.assertGreater(result.downlink, 0)
        self.assertGreater(result.serverCpu, 0)
        self.assertGreater(result.forwardedPerSecond, 1000)
        self.assertIsNotNone(result.rttMedianUs)
