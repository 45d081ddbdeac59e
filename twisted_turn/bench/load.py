# -*- test-case-name: tests.test_bench -*-
"""
The data plane of the benchmark, in C (native/turnbench.c): the load generator and the echo
peer, each run in a thread of its own.  cffi releases the GIL for the length of a C call, so
both run in parallel with each other and with the Python thread that samples their counters.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from twisted_turn.bench.client import LOOPBACK, checkLoopback, loadSocket

__all__ = [
    "CHANNEL_HEADER",
    "MAX_PAYLOAD",
    "PAYLOAD_HEADER",
    "EchoPeer",
    "Generator",
    "LoadResult",
    "decodeFrame",
    "native",
]

#: Bytes of the ChannelData header, and of the payload header the generator writes after it.
CHANNEL_HEADER = 4
PAYLOAD_HEADER = 16
#: The largest payload the generator sends.
MAX_PAYLOAD = 2040

_FRAME = struct.Struct("!HHIIQ")


def native() -> Tuple[Any, Any]:
    """
    @return: C{(ffi, lib)} of the native module.
    @raise RuntimeError: it is not built; the message says how to build it.
    """
    try:
        from twisted_turn._turnio import ffi, lib
    except ImportError as e:
        raise RuntimeError(
            f"the benchmark needs the native module twisted_turn._turnio ({e}); build it with "
            "'python setup.py build_ext --inplace' or 'pip install .'"
        ) from None
    if not hasattr(lib, "tb_gen_new"):
        raise RuntimeError("twisted_turn._turnio was built without the load generator")
    return ffi, lib


def decodeFrame(data: bytes) -> Dict[str, int]:
    """
    Decode a frame as the generator builds it: C{[channel u16][length u16][seq u32]
    [client u32][send time u64][filler]}, all big-endian.

    @return: C{channel}, C{length} (of the payload, per the header), C{seq}, C{client},
        C{sentNs}.
    @raise ValueError: C{data} is shorter than the headers.
    """
    if len(data) < CHANNEL_HEADER + PAYLOAD_HEADER:
        raise ValueError(f"{len(data)} bytes is shorter than a generator frame")
    channel, length, seq, client, sentNs = _FRAME.unpack_from(data)
    return {"channel": channel, "length": length, "seq": seq, "client": client,
            "sentNs": sentNs}


@dataclass
class LoadResult:
    """
    What one generator run saw, from its own counters.

    @ivar sent: datagrams the kernel took.
    @ivar received: echoes of them that came back.
    @ivar sendSeconds: how long it sent.
    @ivar rttMedianNs: the median round-trip time (to about 3 %), in ns.
    @ivar rttP99Ns: the 99th percentile.
    """

    sent: int
    received: int
    sentBytes: int
    receivedBytes: int
    sendCalls: int
    gsoSends: int
    recvCalls: int
    sendDrops: int
    sendErrors: int
    recvErrors: int
    bad: int
    reordered: int
    stalls: int
    skipped: int
    sendSeconds: float
    totalSeconds: float
    rttCount: int
    rttMinNs: int
    rttMedianNs: int
    rttP99Ns: int
    rttMaxNs: int
    rttMeanNs: float
    error: int

    @property
    def loss(self) -> float:
        """
        The share of sent datagrams whose echo never came back (0 when nothing was sent).
        """
        if self.sent == 0:
            return 0.0
        return max(0, self.sent - self.received) / self.sent

    def asDict(self) -> Dict[str, Any]:
        return dict(asdict(self), loss=self.loss)


class _Runner:
    """
    A C object whose C{*_run} function blocks, run in a daemon thread.
    """

    _thread: Optional[threading.Thread] = None
    _result: Optional[int] = None

    def _start(self, run: Any, handle: Any, name: str) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")

        def target() -> None:
            self._result = run(handle)

        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def _join(self, timeout: Optional[float]) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} did not stop within {timeout} s")
            self._thread = None


class EchoPeer(_Runner):
    """
    The C echo peer on a UDP socket of 127.0.0.1: every datagram goes back to its source.

    @ivar port: the port it listens on.
    """

    def __init__(self, port: int = 0, batch: int = 64, gso: bool = True) -> None:
        self._ffi, self._lib = native()
        self.sock = loadSocket(port)
        self.port = self.sock.getsockname()[1]
        self._peer = self._lib.tb_peer_new(self.sock.fileno(), batch, int(gso))
        if self._peer == self._ffi.NULL:
            self.sock.close()
            raise ValueError(f"cannot make an echo peer with a batch of {batch}")

    @property
    def address(self) -> Tuple[str, int]:
        return (LOOPBACK, self.port)

    def start(self) -> "EchoPeer":
        self._start(self._lib.tb_peer_run, self._peer, "echo-peer")
        return self

    def counters(self) -> Dict[str, int]:
        """
        The live counters: C{received}, C{receivedBytes}, C{sent}, C{sendDrops},
        C{sendErrors}, C{recvCalls}, C{sendCalls}.
        """
        s = self._peer.stats
        return {
            "received": s.received,
            "receivedBytes": s.received_bytes,
            "sent": s.sent,
            "sendDrops": s.send_drops,
            "sendErrors": s.send_errors,
            "recvCalls": s.recv_calls,
            "sendCalls": s.send_calls,
            "gsoSends": s.gso_sends,
        }

    def stop(self) -> None:
        """
        Stop echoing, wait for the thread, and free the C peer and the socket.
        """
        if self._peer is None:
            return
        self._lib.tb_peer_stop(self._peer)
        self._join(5)
        self._lib.tb_peer_free(self._peer)
        self._peer = None
        self.sock.close()


class Generator(_Runner):
    """
    The C load generator over connected client sockets (see L{twisted_turn.bench.client}).

    Each client sends ChannelData frames on its channel, either as fast as it can (C{rate}
    0; with C{inflight}, at most that many datagrams beyond the newest echo) or C{rate}
    datagrams a second on a fixed schedule, for C{duration} seconds and at most C{count}
    datagrams, then waits up to C{drain} seconds for the last echoes.

    @param sizes: payload sizes after the ChannelData header, cycled; client I{i} starts at
        index I{i}.
    @param batch: flood: datagrams per send call.
    @param stall: flood with C{inflight}: after this many seconds without an echo the window
        counts as lost and sending resumes.
    @param gso: send a flood's equal-size frames as one UDP GSO send (the kernel splits it;
        the server receives the same datagrams) when the kernel allows, which makes the
        generator about three times cheaper.
    @param tick: fixed rate: wake at most every C{tick} seconds and handle the due sends and
        the echoes together (round-trip times use the kernel's receive time, so they do not
        grow with it); 0 wakes for every send and every echo.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        channels: Sequence[int],
        sizes: Sequence[int] = (120,),
        *,
        rate: float = 0.0,
        inflight: int = 0,
        duration: float = 1.0,
        drain: float = 0.5,
        count: int = 0,
        batch: int = 64,
        stall: float = 0.05,
        gso: bool = True,
        tick: float = 0.0,
    ) -> None:
        if len(sockets) != len(channels) or not sockets:
            raise ValueError("one channel per socket, and at least one socket")
        for sock in sockets:
            host, _ = sock.getpeername()
            checkLoopback(host)
        for size in sizes:
            if not PAYLOAD_HEADER <= size <= MAX_PAYLOAD:
                raise ValueError(f"payload size {size}: between {PAYLOAD_HEADER} and {MAX_PAYLOAD}")
        self._ffi, self._lib = native()
        self._sockets = list(sockets)
        ffi = self._ffi
        config = ffi.new("struct tb_gen_config *")
        fds = ffi.new("int[]", [s.fileno() for s in sockets])
        channelArray = ffi.new("uint16_t[]", list(channels))
        sizeArray = ffi.new("uint32_t[]", list(sizes))
        config.nclients = len(sockets)
        config.fds = fds
        config.channels = channelArray
        config.sizes = sizeArray
        config.nsizes = len(sizes)
        config.rate = rate
        config.inflight = inflight
        config.duration = duration
        config.drain = drain
        config.count = count
        config.batch = batch
        config.stall = stall
        config.gso = int(gso)
        config.tick = tick
        # tb_gen_new copies everything it needs out of these arrays.
        self._gen = self._lib.tb_gen_new(config)
        if self._gen == ffi.NULL:
            raise ValueError(
                f"the generator refused its configuration ({ffi.errno}): {len(sockets)} "
                f"clients, sizes {list(sizes)}, rate {rate}, batch {batch}, duration {duration}, "
                f"drain {drain}"
            )

    def start(self) -> "Generator":
        self._start(self._lib.tb_gen_run, self._gen, "load-generator")
        return self

    @property
    def alive(self) -> bool:
        """
        Whether the thread running the generator has not finished.
        """
        return self._thread is not None and self._thread.is_alive()

    @property
    def sendingDone(self) -> bool:
        """
        Whether the generator stopped sending (it may still be draining).
        """
        return bool(self._gen.stats.send_end_ns) or (self._thread is not None and not self.alive)

    @property
    def startNs(self) -> int:
        """
        CLOCK_MONOTONIC (what L{time.monotonic_ns} reads) when sending started; 0 before.
        """
        return self._gen.stats.start_ns

    def counters(self) -> Dict[str, int]:
        """
        The live counters: C{sent} and C{received}.
        """
        s = self._gen.stats
        return {"sent": s.sent, "received": s.received}

    def stop(self) -> None:
        """
        Ask a running generator to stop early.
        """
        if self._gen is not None:
            self._lib.tb_gen_stop(self._gen)

    def wait(self, timeout: Optional[float] = None) -> LoadResult:
        """
        Wait for the run to end.

        @return: its result.
        @raise OSError: the run failed (the generator's errno).
        """
        self._join(timeout)
        s = self._gen.stats
        if self._result:
            raise OSError(-self._result, f"load generator: {os.strerror(-self._result)}")
        lib = self._lib
        count = s.rtt_count
        return LoadResult(
            sent=s.sent,
            received=s.received,
            sentBytes=s.sent_bytes,
            receivedBytes=s.received_bytes,
            sendCalls=s.send_calls,
            gsoSends=s.gso_sends,
            recvCalls=s.recv_calls,
            sendDrops=s.send_drops,
            sendErrors=s.send_errors,
            recvErrors=s.recv_errors,
            bad=s.bad,
            reordered=s.reordered,
            stalls=s.stalls,
            skipped=s.skipped,
            sendSeconds=max(0, s.send_end_ns - s.start_ns) / 1e9,
            totalSeconds=max(0, s.end_ns - s.start_ns) / 1e9,
            rttCount=count,
            rttMinNs=s.rtt_min_ns,
            rttMedianNs=lib.tb_hist_quantile(s.rtt_hist, 0.5),
            rttP99Ns=lib.tb_hist_quantile(s.rtt_hist, 0.99),
            rttMaxNs=s.rtt_max_ns,
            rttMeanNs=s.rtt_sum_ns / count if count else 0.0,
            error=s.error,
        )

    def run(self) -> LoadResult:
        """
        Start, and wait for the end.
        """
        self.start()
        try:
            return self.wait()
        except BaseException:
            self.stop()
            raise

    def close(self) -> None:
        """
        Free the C generator (after the run); the sockets stay open, they are the caller's.
        """
        if self._gen is not None:
            self.stop()
            self._join(10)
            self._lib.tb_gen_free(self._gen)
            self._gen = None
