# -*- test-case-name: tests.test_relay -*-
"""
The relay socket pool: ports from C{--min-port..--max-port} chosen with a CSPRNG, EVEN-PORT
reservations (RFC 8656 section 14.6), and the bookkeeping that frees a port on every path.

Sockets are opened through an injected C{opener}, a callable C{opener(host, port)} returning a
relay handle (an object with C{transport}, C{attach(allocation)} and C{close()}) or raising
L{OSError} when the port cannot be bound.  The Twisted adapter is in L{twisted_turn.service}.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

#: RFC 8656 section 7.2: a reserved port is kept for at least 30 seconds.
RESERVATION_LIFETIME = 30.0

#: Random picks tried before scanning the range, so a nearly full range still finds a port.
RANDOM_PICKS = 32


#: Bind errors that mean "this port, not another": try the next one.  Anything else (out of
#: file descriptors, say) would fail for every port, so the search stops at once.
_PORT_TAKEN = frozenset({errno.EADDRINUSE, errno.EACCES})


class NoRelayPort(Exception):
    """
    No relay port could be opened (the range is exhausted or every bind failed): 508.
    """


class Reservation:
    __slots__ = ("host", "port", "handle", "expiresAt", "owner")

    def __init__(
        self, host: str, port: int, handle: Any, expiresAt: float, owner: Optional[str]
    ) -> None:
        self.host = host
        self.port = port
        self.handle = handle
        self.expiresAt = expiresAt
        self.owner = owner


def addressFamily(host: str) -> int:
    """
    The STUN address family (1 IPv4, 2 IPv6) of an address literal.
    """
    return 1 if ipaddress.ip_address(host).version == 4 else 2


class RelayPortAllocator:
    """
    Chooses, opens and frees relay ports, one relay address per address family.

    @ivar inUse: relay host to the set of ports this server holds open there.
    """

    def __init__(
        self,
        opener: Callable[[str, int], Any],
        relayHosts: Tuple[str, ...],
        minPort: int,
        maxPort: int,
        random: Any = None,
    ) -> None:
        self._opener = opener
        self._hostByFamily: Dict[int, str] = {}
        for host in relayHosts:
            self._hostByFamily.setdefault(addressFamily(host), host)
        self._minPort = minPort
        self._maxPort = maxPort
        self._random = random if random is not None else secrets.SystemRandom()
        self.inUse: Dict[str, Set[int]] = {host: set() for host in self._hostByFamily.values()}
        self._reservations: Dict[bytes, Reservation] = {}
        self._reservationsByOwner: Dict[Optional[str], int] = {}

    def hostFor(self, family: int) -> Optional[str]:
        """
        The relay address of a family, or L{None} when the server has none.
        """
        return self._hostByFamily.get(family)

    @property
    def relayHosts(self) -> Tuple[str, ...]:
        return tuple(self._hostByFamily.values())

    def holds(self, host: str, port: int) -> bool:
        """
        Whether this server has a relay socket (an allocation's or a reservation's) open on
        C{host} and C{port}: the peer policy lets clients reach those, and only those, ports of
        the relay address.
        """
        ports = self.inUse.get(host)
        return ports is not None and port in ports

    def _candidates(self, host: str, even: bool, pair: bool) -> Iterator[int]:
        used = self.inUse[host]
        low, high = self._minPort, self._maxPort
        if even and low % 2:
            low += 1
        step = 2 if even else 1
        count = (high - low) // step + 1
        if count <= 0:
            return

        def free(port: int) -> bool:
            if port in used:
                return False
            return not pair or (port + 1 <= self._maxPort and port + 1 not in used)

        for _ in range(RANDOM_PICKS):
            port = low + step * self._random.randrange(count)
            if free(port):
                yield port
        start = self._random.randrange(count)
        for index in range(count):
            port = low + step * ((start + index) % count)
            if free(port):
                yield port

    def _bind(self, host: str, port: int) -> Any:
        try:
            handle = self._opener(host, port)
        except OSError as e:
            if e.errno in _PORT_TAKEN:
                raise
            raise NoRelayPort(f"cannot open a relay socket on {host}: {e}") from e
        self.inUse[host].add(port)
        return handle

    def reservationCount(self, owner: Any = None, anyOwner: bool = True) -> int:
        """
        How many ports are held by reservations: all of them, or (C{anyOwner=False}) those
        C{owner} made, so that quotas count them like allocations.
        """
        if anyOwner:
            return len(self._reservations)
        return self._reservationsByOwner.get(owner, 0)

    def _forget(self, token: bytes) -> Reservation:
        reservation = self._reservations.pop(token)
        remaining = self._reservationsByOwner[reservation.owner] - 1
        if remaining:
            self._reservationsByOwner[reservation.owner] = remaining
        else:
            del self._reservationsByOwner[reservation.owner]
        return reservation

    def open(
        self,
        family: int,
        now: float,
        even: bool = False,
        reserveNext: bool = False,
        owner: Optional[str] = None,
    ) -> Tuple[Any, str, int, Optional[bytes]]:
        """
        Open a relay socket.

        @param even: EVEN-PORT was requested: the port is even.
        @param reserveNext: EVEN-PORT's R bit: also hold C{port + 1} for a later Allocate
            carrying the returned token.
        @param owner: who the reservation counts against (see L{reservationCount}).
        @return: C{(handle, host, port, token)}; C{token} is L{None} unless C{reserveNext}.
        @raise NoRelayPort: nothing could be bound, or binding failed for a reason that no
            other port would avoid.
        @raise KeyError: the server has no relay address of C{family}.
        """
        host = self._hostByFamily[family]
        for port in self._candidates(host, even, reserveNext):
            try:
                handle = self._bind(host, port)
            except OSError:
                continue
            if not reserveNext:
                return handle, host, port, None
            try:
                reserved = self._bind(host, port + 1)
            except OSError:
                self.release(host, port, handle)
                continue
            token = secrets.token_bytes(8)
            self._reservations[token] = Reservation(
                host, port + 1, reserved, now + RESERVATION_LIFETIME, owner
            )
            self._reservationsByOwner[owner] = self._reservationsByOwner.get(owner, 0) + 1
            return handle, host, port, token
        raise NoRelayPort(f"no free relay port on {host} in {self._minPort}-{self._maxPort}")

    def takeReservation(self, token: bytes, now: float) -> Optional[Tuple[Any, str, int]]:
        """
        Claim the socket held for C{token}; L{None} if the token is unknown or expired.
        """
        if token not in self._reservations:
            return None
        reservation = self._forget(token)
        if reservation.expiresAt < now:
            self.release(reservation.host, reservation.port, reservation.handle)
            return None
        return reservation.handle, reservation.host, reservation.port

    def release(self, host: str, port: int, handle: Any) -> None:
        """
        Close a relay socket and make its port available again.
        """
        self.inUse[host].discard(port)
        handle.close()

    def sweep(self, now: float) -> int:
        """
        Free expired reservations; return how many were freed.
        """
        expired: List[bytes] = [
            token for token, reservation in self._reservations.items()
            if reservation.expiresAt < now
        ]
        for token in expired:
            reservation = self._forget(token)
            self.release(reservation.host, reservation.port, reservation.handle)
        return len(expired)

    def closeAll(self) -> None:
        """
        Free every reservation (at shutdown; allocations free their own ports).
        """
        self.sweep(float("inf"))
