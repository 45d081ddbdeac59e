# -*- test-case-name: tests.test_udp -*-
"""
The batching UDP port: the hot path of the project (DESIGN.md section 3).

L{BatchingPort} is a L{twisted.internet.udp.Port} whose C{doRead} drains its socket with
C{recvmmsg} and hands every datagram to the protocol inside one L{BatchScope}.  While a scope is
open, C{write} on any batching port only queues, per socket and per destination, in order; the
outermost C{end} flushes each queue through the native module with the fewest system calls: a
run of equal-size datagrams to one destination as one GSO send (C{sendmsg} with C{UDP_SEGMENT}),
the rest through C{sendmmsg}.  Outside a scope C{write} sends at once.

L{listenUDP} picks the port: the batching one where the native module is present and any of
recvmmsg/sendmmsg is on, otherwise the reactor's stock port (where the scope is a no-op).
"""

from __future__ import annotations

import errno as errnoModule
import os
import re
import socket
import struct
import weakref
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from errno import EAGAIN, ECONNREFUSED, EINTR, EMSGSIZE, ENOBUFS, EWOULDBLOCK
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet import abstract, error, udp

from twisted_turn._log import makeLogger, worthLogging

_log = makeLogger(__name__)

Address = Tuple[str, int]

# One receive buffer holds any UDP datagram, so nothing is ever truncated.
SLOT_SIZE = 65536
DEFAULT_BATCH_SIZE = 64
# Datagrams one doRead takes from one socket before letting the reactor serve the others.
DEFAULT_BUDGET = 256
# Entries kept in the source-address and destination caches; past it the oldest is forgotten.
_CACHE_LIMIT = 65536

_IGNORED_READ_ERRORS = frozenset({EAGAIN, EWOULDBLOCK, EINTR})
_DROPPED_WRITE_ERRORS = frozenset({EAGAIN, EWOULDBLOCK, ENOBUFS})
HISTOGRAM_LABELS = ("1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128+")


class BatchScope:
    """
    The process-wide batch scope: between the outermost L{begin} and its L{end}, writes on
    batching ports queue; that L{end} flushes them.  Scopes nest.  The reactor is
    single-threaded, so one scope serves every port.
    """

    def __init__(self) -> None:
        self.depth = 0
        self._dirty: List["BatchingPort"] = []

    def begin(self) -> None:
        self.depth += 1

    def end(self) -> None:
        """
        Close a scope; the outermost one flushes every port that queued.
        """
        depth = self.depth - 1
        if depth < 0:
            raise RuntimeError("BatchScope.end() without a begin()")
        self.depth = depth
        if depth == 0 and self._dirty:
            self.flush()

    def flush(self) -> None:
        """
        Send everything queued so far.  A port's failure is counted and logged; it does not
        keep the others from sending.
        """
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for port in dirty:
                try:
                    port._flush()
                except Exception:
                    _counters["flushError"] += 1
                    if worthLogging(_counters["flushError"]):
                        _log.failure("Flushing queued datagrams failed")

    def __enter__(self) -> "BatchScope":
        self.begin()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end()


batch = BatchScope()

# Counters kept in Python (the native module keeps the rest in tt_stats).
_counters: Dict[str, int] = {
    "readError": 0,
    "protocolError": 0,
    "flushError": 0,
    "dropClosed": 0,
    "dropImmediate": 0,
}

# linux/socket.h: SO_SNDBUFFORCE and SO_RCVBUFFORCE set a buffer past net.core.wmem_max and
# rmem_max (with CAP_NET_ADMIN); SO_MEMINFO reads a socket's memory counters, the ninth of
# which (SK_MEMINFO_DROPS) is the datagrams the kernel dropped for it, mostly for a full
# receive queue: the counter SO_RXQ_OVFL would put in every recvmmsg's control data.
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE, _SO_MEMINFO = 32, 33, 55
_MEMINFO = struct.Struct("=9I")

#: The UDP ports this process listens on, for their kernel drop counters; a port's last count
#: moves to _closedKernelDrops when it closes.
_tracked: "weakref.WeakSet[Any]" = weakref.WeakSet()
_closedKernelDrops = [0]


def socketDrops(sock: Any) -> int:
    """
    The datagrams the kernel dropped for socket C{sock} (its receive queue was full), 0 where
    the kernel does not say.
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 64)
        return _MEMINFO.unpack_from(raw)[8]
    except (OSError, struct.error, AttributeError, ValueError):
        return 0


def setBufferSize(port: Any, size: int) -> Optional[Tuple[int, int]]:
    """
    Set the receive and send buffers of C{port}'s socket to C{size} bytes: past the kernel's
    ceiling where the process may (CAP_NET_ADMIN), else as far as the ceiling allows.

    @return: the sizes in force, receive and send (the kernel reports twice what it was
        asked for, of which half is payload room: this is that half), or L{None} for a port
        without a socket (a test's fake transport).
    """
    sock = getattr(port, "socket", None)
    if sock is None or size <= 0:
        return bufferSizes(port)
    for plain, forced in ((socket.SO_RCVBUF, _SO_RCVBUFFORCE), (socket.SO_SNDBUF, _SO_SNDBUFFORCE)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
    return bufferSizes(port)


def bufferSizes(port: Any) -> Optional[Tuple[int, int]]:
    """
    The receive and send buffer sizes of C{port}'s socket as it was asked for (the kernel
    reports twice that, the other half being its bookkeeping), or L{None} without a socket.
    """
    sock = getattr(port, "socket", None)
    if sock is None:
        return None
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2,
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2,
    )


def track(port: Any) -> None:
    """
    Count C{port}'s kernel drops in L{udpCounters} (L{listenUDP} and L{adoptDatagramPort} do).
    """
    if getattr(port, "socket", None) is not None:
        _tracked.add(port)


def release(port: Any) -> None:
    """
    Keep C{port}'s kernel drops once it closes: call before its socket is closed (a
    L{BatchingPort} does it itself).
    """
    if port in _tracked:
        _tracked.discard(port)
        _closedKernelDrops[0] += socketDrops(port.socket)


def kernelDrops() -> int:
    """
    The datagrams the kernel dropped for every UDP port of this process, closed ones included.
    """
    return _closedKernelDrops[0] + sum(
        socketDrops(port.socket) for port in list(_tracked) if getattr(port, "socket", None)
    )


@dataclass(frozen=True)
class BatchingOptions:
    """
    How UDP ports batch (C{--udp-recvmmsg}, C{--udp-sendmmsg}, C{--udp-gso}).

    @ivar native: the native module, or C{None} to use the stock Twisted port.
    @ivar nativeReason: why C{native} is C{None}, for the log.
    """

    native: Any = None
    recvmmsg: bool = True
    sendmmsg: bool = True
    gso: bool = True
    batchSize: int = DEFAULT_BATCH_SIZE
    budget: int = DEFAULT_BUDGET
    nativeReason: str = ""

    @property
    def batching(self) -> bool:
        """
        Whether ports are L{BatchingPort}s (else Twisted's stock port).
        """
        return self.native is not None and (self.recvmmsg or self.sendmmsg)

    def describe(self) -> str:
        if self.native is None:
            return f"Twisted's stock UDP port: {self.nativeReason}"
        if not self.batching:
            return "Twisted's stock UDP port (--udp-recvmmsg and --udp-sendmmsg are off)"
        parts = [
            f"recvmmsg batches of {self.batchSize}" if self.recvmmsg else "recvfrom",
            "sendmmsg" if self.sendmmsg else "immediate sends",
        ]
        if self.sendmmsg:
            if not self.gso:
                parts.append("no GSO")
            elif not self.native.lib.tt_gso_compiled():
                parts.append("no GSO (not in this build)")
            else:
                parts.append("UDP GSO")
        return "the batching UDP port: " + ", ".join(parts)


STOCK = BatchingOptions(nativeReason="batching was not asked for")


def kernelHasGso(release: Optional[str] = None) -> bool:
    """
    Whether the running Linux kernel (or C{release}, as C{uname -r} prints it) knows
    C{UDP_SEGMENT}, which came with 4.18.  An older kernel ignores the control message and would
    send a whole run as one datagram, so GSO must not even be tried there.
    """
    if release is None:
        release = os.uname().release
    match = re.match(r"(\d+)\.(\d+)", release)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= (4, 18)


class _Receiver:
    """
    Native receive buffers; one is shared by every port (the reactor reads one socket at a
    time), a second one only if a protocol reads another port from inside a delivery.
    """

    def __init__(self, native: Any, capacity: int) -> None:
        ffi, lib = native.ffi, native.lib
        rx = lib.tt_rx_new(capacity, SLOT_SIZE)
        if rx == ffi.NULL:
            raise MemoryError("cannot allocate the recvmmsg buffers")
        self.rx = ffi.gc(rx, lib.tt_rx_free)
        self.capacity = capacity
        self.buffers = ffi.buffer(rx.buffers, capacity * SLOT_SIZE)
        self.names = ffi.buffer(rx.names, capacity * lib.TT_NAME_SIZE)


_receivers: Dict[int, List[_Receiver]] = {}

# Source key (the native module's IPv4 key, or raw sockaddr bytes) to (host, port), and per
# address family destination to packed sockaddr.  Neither depends on the port, so they are
# shared: one bounded cache each, not one per relay socket.  OrderedDict for O(1) eviction of
# the oldest; its lookups are a dict's.
_sources: "OrderedDict[Any, Address]" = OrderedDict()
_names: Dict[int, "OrderedDict[Any, bytes]"] = {
    socket.AF_INET: OrderedDict(), socket.AF_INET6: OrderedDict()
}


def _remember(cache: "OrderedDict[Any, Any]", key: Any, value: Any) -> None:
    """
    Add to a bounded cache, forgetting its oldest entry when full: a flood of new addresses
    (spoofed sources) holds the cache at its size, so memory stays flat, rather than filling
    and emptying it.
    """
    if len(cache) >= _CACHE_LIMIT:
        cache.popitem(last=False)
    cache[key] = value


class BatchingPort(udp.Port):
    """
    A UDP port with the interfaces of L{twisted.internet.udp.Port} (it is one) that reads with
    C{recvmmsg} and writes through the L{batch} scope.  Any C{DatagramProtocol} runs on it.
    """

    def __init__(
        self,
        port: Optional[int],
        proto: Any,
        interface: str = "",
        maxPacketSize: int = 8192,
        reactor: Any = None,
        options: BatchingOptions = STOCK,
    ) -> None:
        if options.native is None:
            raise ValueError("BatchingPort needs the native module (BatchingOptions.native)")
        udp.Port.__init__(self, port, proto, interface, maxPacketSize, reactor)
        self._options = options
        self._ffi = options.native.ffi
        self._lib = options.native.lib
        self._batchSize = options.batchSize
        self._budget = options.budget
        self._queueing = options.sendmmsg
        self._sendFlags = self._lib.TT_SEND_GSO if options.gso else 0
        self._queues: Dict[Any, List[bytes]] = {}
        # Destinations already validated, packed as the native module's sockaddr.
        self._names = _names[self.addressFamily]
        self._sources = _sources
        self._fd = -1
        if not options.recvmmsg:
            self.doRead = self._doReadSingly  # type: ignore[method-assign]

    @classmethod
    def adopt(
        cls, sock: socket.socket, proto: Any, maxPacketSize: int, reactor: Any,
        options: BatchingOptions,
    ) -> "BatchingPort":
        """
        A port on a socket made elsewhere (bound and non-blocking, like
        C{adoptDatagramPort}'s); the port keeps its own duplicate of the descriptor.
        """
        port = cls(None, proto, sock.getsockname()[0], maxPacketSize, reactor, options)
        own = socket.fromfd(sock.fileno(), sock.family, sock.type)
        own.setblocking(False)
        port._preexistingSocket = own
        port.addressFamily = sock.family
        port._names = _names[sock.family]
        return port

    # -- lifetime ------------------------------------------------------------------------------

    def _bindSocket(self) -> None:
        # The stock port's, without its "starting on" log line: a TURN server opens one of
        # these per allocation.
        if self._preexistingSocket is None:
            try:
                skt = self.createInternetSocket()
                skt.bind((self.interface, self.port))
            except OSError as le:
                raise error.CannotListenError(self.interface, self.port, le)
        else:
            skt = self._preexistingSocket
            self._preexistingSocket = None
        self._realPortNumber = skt.getsockname()[1]
        self.connected = 1
        self.socket = skt
        self.fileno = skt.fileno
        self._fd = skt.fileno()

    def connectionLost(self, reason: Any = None) -> None:
        # The stock port's, without its "Closed" log line.
        release(self)
        if self._queues:
            _counters["dropClosed"] += sum(len(queue) for queue in self._queues.values())
            self._queues = {}
        self._realPortNumber = None
        self.maxThroughput = -1
        udp.base.BasePort.connectionLost(self, reason)
        self.protocol.doStop()
        self.socket.close()
        del self.socket
        del self.fileno
        self._fd = -1
        if hasattr(self, "d"):
            self.d.callback(None)
            del self.d

    def connect(self, host: str, port: int) -> None:
        # A connected port writes with send(), as the stock port does; what was queued before
        # goes first.
        self._flush()
        udp.Port.connect(self, host, port)
        self._queueing = False

    # -- reading -------------------------------------------------------------------------------

    def doRead(self) -> None:
        """
        Drain the socket with C{recvmmsg}, up to the budget, delivering every datagram inside
        one batch scope.
        """
        pool = _receivers.get(self._batchSize)
        if pool is None:
            pool = _receivers[self._batchSize] = []
        if pool:
            receiver = pool.pop()
        else:
            try:
                receiver = _Receiver(self._options.native, self._batchSize)
            except MemoryError:
                # Leave the datagrams in the socket; raising would close the port.
                self._readError(errnoModule.ENOMEM)
                return
        lib = self._lib
        unpack = self._ffi.unpack
        rx = receiver.rx
        buffers = receiver.buffers
        sources = self._sources
        deliver = self.protocol.datagramReceived
        batchSize = self._batchSize
        remaining = self._budget
        batch.depth += 1
        try:
            # A protocol may close the port during delivery: then stop reading it.
            while remaining > 0 and self._fd >= 0:
                count = lib.tt_recv(rx, self._fd, batchSize)
                if count <= 0:
                    if count < 0:
                        self._readError(-count)
                    return
                lengths = unpack(rx.lengths, count)
                keys = unpack(rx.keys, count)
                offset = 0
                for i in range(count):
                    try:
                        source = sources[keys[i]]
                    except KeyError:
                        source = self._source(receiver, i, keys[i])
                    try:
                        deliver(buffers[offset : offset + lengths[i]], source)
                    except BaseException:
                        self._protocolError()
                    offset += SLOT_SIZE
                if count < batchSize:
                    return
                remaining -= count
        finally:
            pool.append(receiver)
            batch.end()

    def _doReadSingly(self) -> None:
        # --udp-recvmmsg=false: the stock read loop, still inside one scope so writes batch.
        batch.begin()
        try:
            udp.Port.doRead(self)
        finally:
            batch.end()

    def _source(self, receiver: _Receiver, index: int, key: int) -> Address:
        """
        The C{(host, port)} of datagram C{index}, remembered under its key: the IPv4 key the
        native module computed, or the raw sockaddr bytes of any other family.
        """
        if key == self._lib.TT_KEY_OTHER:
            size = self._lib.TT_NAME_SIZE
            key = receiver.names[index * size : (index + 1) * size]
            known = self._sources.get(key)
            if known is not None:
                return known
        host = self._ffi.new("uint8_t[16]")
        port = self._ffi.new("uint16_t *")
        scope = self._ffi.new("uint32_t *")
        family = self._lib.tt_rx_address(receiver.rx, index, host, port, scope)
        if family == socket.AF_INET:
            text = socket.inet_ntop(socket.AF_INET, self._ffi.buffer(host, 4)[:])
        else:
            text = socket.inet_ntop(socket.AF_INET6, self._ffi.buffer(host, 16)[:])
            if scope[0]:
                try:
                    text += "%" + socket.if_indextoname(scope[0])
                except OSError:
                    text += f"%{scope[0]}"
        source = (text, port[0])
        _remember(_sources, key, source)
        return source

    def _readError(self, errno: int) -> None:
        if errno in _IGNORED_READ_ERRORS:
            return
        if errno == ECONNREFUSED:
            if self._connectedAddr:
                self.protocol.connectionRefused()
            return
        # Anything else (ENOMEM, say) is counted and logged; raising would make the reactor
        # close a listener that every client depends on.
        _counters["readError"] += 1
        if worthLogging(_counters["readError"]):
            _log.error(
                "recvmmsg failed on UDP port {port}: {error}",
                port=self._realPortNumber,
                error=errnoModule.errorcode.get(errno, errno),
            )

    def _protocolError(self) -> None:
        _counters["protocolError"] += 1
        if worthLogging(_counters["protocolError"]):
            _log.failure("Unhandled error in {protocol}.datagramReceived",
                         protocol=self.protocol.__class__.__name__)

    # -- writing -------------------------------------------------------------------------------

    def write(self, datagram: bytes, addr: Optional[Address] = None) -> None:
        """
        Queue the datagram while a batch scope is open, else send it at once.  The address is
        checked as the stock port checks it (L{error.InvalidAddressError}) the first time it
        is seen.
        """
        if batch.depth and self._queueing:
            if datagram.__class__ is not bytes:
                # As the stock port does: TypeError for text, and a copy of a mutable buffer
                # (it is sent later, and must be sent as it was written).
                datagram = bytes(datagram)
            queues = self._queues
            queue = queues.get(addr)
            if queue is not None:
                queue.append(datagram)
                return
            if addr not in self._names:
                self._name(addr)
            if not queues:
                batch._dirty.append(self)
            queues[addr] = [datagram]
            return
        if self._connectedAddr:
            return udp.Port.write(self, datagram, addr)
        if addr not in self._names:
            self._name(addr)
        try:
            self.socket.sendto(datagram, addr)
        except OSError as se:
            self._immediateError(se, datagram, addr)

    def _immediateError(self, se: OSError, datagram: bytes, addr: Any) -> None:
        no = se.args[0]
        if no == EINTR:
            self.write(datagram, addr)
        elif no == EMSGSIZE:
            raise error.MessageLengthError("message too long")
        elif no in _DROPPED_WRITE_ERRORS:
            # Never block the reactor on a full socket buffer: drop and count.
            _counters["dropImmediate"] += 1
        elif no != ECONNREFUSED:
            raise se

    def _name(self, addr: Any) -> bytes:
        """
        Check a destination as the stock port does and pack it for the native module.
        """
        if addr is None:
            raise error.InvalidAddressError(None, "an unconnected port needs an address")
        host, port = addr[0], addr[1]
        if self.addressFamily == socket.AF_INET6:
            if not abstract.isIPv6Address(host):
                raise error.InvalidAddressError(
                    host, "IPv6 port write() called with IPv4 or broadcast address"
                    if abstract.isIPAddress(host) else "write() only accepts IP addresses"
                )
            bare, _, zone = host.partition("%")
            packedHost = socket.inet_pton(socket.AF_INET6, bare)
            scope = (int(zone) if zone.isdigit() else socket.if_nametoindex(zone)) if zone else 0
            family = socket.AF_INET6
        else:
            if not abstract.isIPAddress(host):
                raise error.InvalidAddressError(
                    host, "IPv4 port write() called with IPv6 address"
                    if abstract.isIPv6Address(host) else "write() only accepts IP addresses"
                )
            packedHost = socket.inet_pton(socket.AF_INET, host)
            scope = 0
            family = socket.AF_INET
        if not 0 < port <= 0xFFFF:
            # Port 0 too: the kernel refuses it (EINVAL), which in a GSO send would read as
            # "GSO refused" and switch GSO off for the process.
            raise error.InvalidAddressError(host, f"port {port} is not a destination port")
        name = self._ffi.new("char[]", self._lib.TT_NAME_SIZE)
        self._lib.tt_pack_name(family, packedHost, port, scope, name)
        packed = self._ffi.buffer(name)[:]
        # Forgetting may drop names of queued destinations: _flush packs those again.
        _remember(self._names, addr, packed)
        return packed

    def _flush(self) -> None:
        """
        Send this port's queues: one native call for all of them.
        """
        queues = self._queues
        if not queues:
            return
        self._queues = {}
        if self._fd < 0:
            _counters["dropClosed"] += sum(len(queue) for queue in queues.values())
            return
        if len(queues) == 1:
            ((addr, queue),) = queues.items()
            if len(queue) == 1:
                # One datagram: a plain sendto is cheaper than building a batch.
                stats = self._lib.tt_stats
                stats.flushes += 1
                try:
                    self.socket.sendto(queue[0], addr)
                except OSError as se:
                    self._flushError(se)
                else:
                    stats.sent_datagrams += 1
                    stats.sent_bytes += len(queue[0])
                return
        names = self._names
        payloads: List[bytes] = []
        groups = array("I")
        destinations = []
        for addr, queue in queues.items():
            # The cache may have forgotten it since the write (it is bounded): pack again.
            destinations.append(names.get(addr) or self._name(addr))
            groups.append(len(queue))
            payloads += queue
        lengths = array("I", map(len, payloads))
        ffi = self._ffi
        result = self._lib.tt_send(
            self._fd,
            b"".join(payloads),
            ffi.from_buffer("uint32_t[]", lengths),
            len(payloads),
            b"".join(destinations),
            ffi.from_buffer("uint32_t[]", groups),
            len(groups),
            self._sendFlags,
        )
        if result & self._lib.TT_GSO_TURNED_OFF:
            _warnGsoOff(self._lib)

    def _flushError(self, se: OSError) -> None:
        no = se.args[0]
        stats = self._lib.tt_stats
        if no in (EAGAIN, EWOULDBLOCK):
            stats.drop_eagain += 1
        elif no == ENOBUFS:
            stats.drop_enobufs += 1
        else:
            stats.drop_error += 1
            stats.last_error = no


def _warnGsoOff(lib: Any) -> None:
    errno = lib.tt_stats.gso_errno
    _log.warn(
        "UDP GSO was refused ({error}), so it is off for this process; the same datagrams "
        "went out through sendmmsg. --udp-gso=false silences this.",
        error=errnoModule.errorcode.get(errno, errno),
    )


def listenUDP(
    reactor: Any,
    port: int,
    protocol: Any,
    interface: str = "",
    maxPacketSize: int = 8192,
    options: BatchingOptions = STOCK,
    bufferSize: int = 0,
) -> Any:
    """
    Listen on UDP with the port C{options} asks for: a started L{BatchingPort} when batching,
    else C{reactor.listenUDP}.

    @param bufferSize: the socket's receive and send buffers in bytes (L{setBufferSize}), or
        0 for the kernel's defaults.
    @raise error.CannotListenError: as C{reactor.listenUDP} does.
    """
    if not options.batching:
        listening = reactor.listenUDP(
            port, protocol, interface=interface, maxPacketSize=maxPacketSize
        )
    else:
        listening = BatchingPort(port, protocol, interface, maxPacketSize, reactor, options)
        listening.startListening()
    setBufferSize(listening, bufferSize)
    track(listening)
    return listening


def adoptDatagramPort(
    reactor: Any, sock: socket.socket, protocol: Any, maxPacketSize: int = 8192,
    options: BatchingOptions = STOCK, bufferSize: int = 0,
) -> Any:
    """
    L{listenUDP} for a socket made and bound elsewhere; C{sock} stays the caller's to close.
    """
    if not options.batching:
        listening = reactor.adoptDatagramPort(
            sock.fileno(), sock.family, protocol, maxPacketSize=maxPacketSize
        )
    else:
        listening = BatchingPort.adopt(sock, protocol, maxPacketSize, reactor, options)
        listening.startListening()
    setBufferSize(listening, bufferSize)
    track(listening)
    return listening


def udpCounters(options: BatchingOptions = STOCK) -> Dict[str, Any]:
    """
    The process's batching counters: recvmmsg calls and datagrams with the batch-size
    histogram, flushes, datagrams sent, GSO sends and datagrams, sendmmsg calls, drops by
    reason and whether GSO is still on.  All zero on the stock port, but C{dropKernelQueue}:
    the datagrams the kernel dropped for a full receive queue, on either port.
    """
    counters: Dict[str, Any] = {"backend": "native" if options.batching else "stock"}
    native = options.native
    if native is not None:
        stats = native.lib.tt_stats
        counters.update(
            recvmmsgCalls=stats.recv_calls,
            datagramsReceived=stats.recv_datagrams,
            batchSizes={
                label: stats.recv_histogram[i] for i, label in enumerate(HISTOGRAM_LABELS)
            },
            dropTruncated=stats.recv_truncated,
            flushes=stats.flushes,
            datagramsSent=stats.sent_datagrams,
            bytesSent=stats.sent_bytes,
            gsoSends=stats.gso_sends,
            gsoDatagrams=stats.gso_datagrams,
            sendmmsgCalls=stats.sendmmsg_calls,
            dropEagain=stats.drop_eagain,
            dropEnobufs=stats.drop_enobufs,
            dropSendError=stats.drop_error,
            gsoEnabled=bool(options.batching and options.sendmmsg and options.gso
                            and stats.gso_enabled),
            # The lowest layer's counters: datagramsSent counts what flushes sent; writes
            # outside a scope are sent at once and counted only when dropped (dropImmediate).
        )
    counters.update(_counters)
    counters["dropKernelQueue"] = kernelDrops()
    return counters
