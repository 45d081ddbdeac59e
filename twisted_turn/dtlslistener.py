# -*- test-case-name: tests.test_dtlslistener -*-
"""
The DTLS listener (RFC 8656 section 3.1, RFC 7350): a UDP socket on C{--tls-listening-port}
whose datagrams go through a L{twisted_turn.dtls.DtlsServer}.

Each decrypted record is one STUN or ChannelData message, handled as on a UDP listener with
transport C{dtls} in the 5-tuple.  The L{DtlsServer} is the allocations' C{clientTransport}: its
C{write(data, addr)} encrypts one record for the client.  An allocation lives as long as its
DTLS session (a close_notify, a fatal alert or the idle rule ends both), and a session without
a live allocation is closed after 30 to 60 seconds, as a stream connection is.
"""

from __future__ import annotations

from typing import Any, Set

from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from twisted_turn._log import makeLogger
from twisted_turn.allocation import Address
from twisted_turn.dtls import DtlsServer
from twisted_turn.protocol import relayChannelData, reportInternalError
from twisted_turn.stream import IDLE_TIMEOUT

_log = makeLogger(__name__)

#: Seconds between calls to L{DtlsServer.tick} (handshake retransmissions and timeouts).
TICK_INTERVAL = 1.0


class DtlsListenerProtocol(DatagramProtocol):
    """
    A client-facing DTLS socket.

    @ivar dtls: the L{DtlsServer}, once started.
    """

    noisy = False

    def __init__(
        self,
        server: Any,
        clock: Any,
        contextFactory: Any,
        maxHandshakes: int = 256,
        handshakeTimeout: float = 10.0,
        idleTimeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._server = server
        self._counters = server.counters
        self._clock = clock
        self._contextFactory = contextFactory
        self._maxHandshakes = maxHandshakes
        self._handshakeTimeout = handshakeTimeout
        self._idleTimeout = idleTimeout
        self._clients: dict = {}
        self._idle: Set[Address] = set()
        self._loops: list = []
        self.serverAddress: Address = ("", 0)
        self.dtls: Any = None

    def startProtocol(self) -> None:
        host = self.transport.getHost()
        self.serverAddress = (host.host, host.port)
        self._clients = self._server.table.clientsOf("dtls", self.serverAddress)
        self.dtls = DtlsServer(
            self._contextFactory,
            self._clock,
            self._send,
            self._deliver,
            self._lost,
            maxHandshakes=self._maxHandshakes,
            handshakeTimeout=self._handshakeTimeout,
        )
        for call, interval in ((self.dtls.tick, TICK_INTERVAL),
                               (self._closeIdle, self._idleTimeout)):
            loop = LoopingCall(call)
            loop.clock = self._clock
            loop.start(interval, now=False)
            self._loops.append(loop)

    def stopProtocol(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        if self.dtls is not None:
            self.dtls.closeAll()

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        self.dtls.datagramReceived(data, addr)

    def _send(self, data: bytes, addr: Address) -> None:
        try:
            self.transport.write(data, addr)
        except Exception:
            self._counters["dropWriteFailed"] += 1

    def _allocation(self, addr: Address) -> Any:
        """
        The allocation made over C{addr}'s DTLS session, if any (expired or not).
        """
        allocation = self._clients.get(addr)
        if allocation is not None and allocation.clientTransport is self.dtls:
            return allocation
        return None

    def _deliver(self, message: bytes, addr: Address) -> None:
        try:
            first = message[0] if message else 0xFF
            if 0x40 <= first <= 0x7F and len(message) >= 4:
                allocation = self._allocation(addr)
                if allocation is None:
                    self._counters["dropChannelNoAllocation"] += 1
                    return
                length = (message[2] << 8) | message[3]
                if length > len(message) - 4:
                    self._counters["dropChannelMalformed"] += 1
                    return
                if len(message) != 4 + length:
                    message = message[: 4 + length]  # padding (optional over DTLS)
                relayChannelData(
                    self._server, self._counters, allocation, message, self._clock.seconds()
                )
            elif first < 4:
                self._server.handleStun(message, self.dtls, addr, self.serverAddress, "dtls")
            else:
                self._counters["dropNotStun"] += 1
        except Exception:
            reportInternalError(self._counters)

    def _lost(self, addr: Address) -> None:
        self._idle.discard(addr)
        allocation = self._allocation(addr)
        if allocation is not None:
            self._server.deallocate(allocation)
            self._counters["dtlsClosedWithAllocation"] += 1

    def _closeIdle(self) -> None:
        """
        Close the sessions that had no live allocation at this check and the one before.
        """
        now = self._clock.seconds()
        idle = set()
        for addr in self.dtls.establishedAddresses():
            allocation = self._allocation(addr)
            if allocation is None or allocation.expiresAt < now:
                idle.add(addr)
        for addr in idle & self._idle:
            self._counters["dtlsIdleClosed"] += 1
            self.dtls.close(addr)
        self._idle = idle - self._idle
