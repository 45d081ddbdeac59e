# -*- test-case-name: tests.test_bandwidth -*-
"""
Bandwidth limits: coturn's C{--max-bps} (per allocation, each direction on its own) and
C{--bps-capacity} (what the whole server hands out).

Every allocation has a rate (bytes a second; 0 for none) and, per direction (what its client
sends to peers, what peers send to its client), the generic cell rate algorithm's
theoretical arrival time: the time by which everything admitted so far would have gone out at
exactly the rate. A datagram is admitted while that time is at most L{BURST_SECONDS} ahead of
now, and moves it on by its size over the rate. This is a token bucket of L{BURST_SECONDS} of
the rate, computed without a refill step: per datagram one or two comparisons, an addition and
a multiplication, and nothing at all for an allocation without a limit (the data path tests
C{allocation.bps} first). Idle time is never banked beyond the burst, a datagram of any size
can pass a small limit (it may take the time past the tolerance; the next ones wait), and over
any period what passes is at most the rate for that period, one burst and one datagram.

C{--bps-capacity} is admission, as in coturn: each new allocation reserves C{--max-bps} of the
capacity (or what is left, when less), and is refused (486) when nothing is left.

No I/O: the callers pass the time.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["BURST_SECONDS", "BandwidthPolicy", "admitUp", "setRate"]

#: How far ahead of its schedule a direction may run: a burst of this many seconds of the
#: rate passes at once (room for a video key frame), and no period lets more than that
#: through beyond the rate.
BURST_SECONDS = 0.25


def setRate(allocation: Any, rate: float, now: float) -> None:
    """
    Give C{allocation} C{rate} bytes a second in each direction (0: no limit), with a full
    burst available in each.
    """
    allocation.bps = rate
    allocation.secondsPerByte = 1.0 / rate if rate else 0.0
    allocation.upDue = allocation.downDue = now


def admitUp(allocation: Any, size: int, now: float) -> bool:
    """
    May C{size} bytes from C{allocation}'s client go to a peer now?  Counts them when they
    may.  Only for an allocation with a limit.  (The relay protocol has the downlink's twin,
    on C{downDue}, inline.)
    """
    due = allocation.upDue
    if due > now:
        if due - now > BURST_SECONDS:
            return False
    else:
        due = now
    allocation.upDue = due + size * allocation.secondsPerByte
    return True


class BandwidthPolicy:
    """
    What rate a new allocation gets, and how much of the capacity is handed out.

    @ivar maxBps: C{--max-bps}, bytes a second per allocation and direction; 0 for no limit.
    @ivar capacity: C{--bps-capacity}, the bytes a second all allocations may reserve
        together; 0 for no limit.
    @ivar reserved: what the live allocations reserved.
    """

    def __init__(self, maxBps: int = 0, capacity: int = 0) -> None:
        """
        @raise ValueError: a negative value, or a capacity without a per-allocation limit (as
            coturn refuses it: nothing would say what to reserve).
        """
        self.maxBps = 0
        self.capacity = 0
        self.reserved = 0.0
        self.reconfigure(maxBps, capacity)

    def reconfigure(self, maxBps: int, capacity: int) -> None:
        """
        New limits (a reload).  Live allocations are the caller's to re-rate
        (L{TurnServer.setBandwidth <twisted_turn.server.TurnServer.setBandwidth>}); the
        capacity decides only whether new ones are admitted.

        @raise ValueError: as the constructor.
        """
        if maxBps < 0 or capacity < 0:
            raise ValueError("bandwidth limits are 0 (none) or more")
        if capacity and not maxBps:
            raise ValueError("--bps-capacity needs --max-bps: it is shared out in its units")
        self.maxBps = maxBps
        self.capacity = capacity

    def reserve(self) -> Optional[float]:
        """
        The rate for a new allocation, reserved from the capacity: C{--max-bps}, or what is
        left of the capacity when less; 0 when there is no limit.

        @return: L{None} when the capacity is used up (the Allocate gets 486).
        """
        rate = float(self.maxBps)
        if self.capacity:
            left = self.capacity - self.reserved
            if left <= 0:
                return None
            rate = min(rate, left)
        self.reserved += rate
        return rate

    def release(self, rate: float) -> None:
        """
        Give back what an allocation reserved.
        """
        self.reserved = max(0.0, self.reserved - rate)
