# -*- test-case-name: tests.test_ratelimit -*-
"""
Rate limits in fixed memory, for what the server does before a request's integrity is proven.

L{SourceLimiter} bounds the answers sent to one source address (an IPv4 /32, an IPv6 /64)
before it has proven anything: a spoofed request must not make the server a reflector.
L{UserFailureLimiter} bounds failed password attempts per user name, without locking the user
out of the addresses it has already authenticated from.

Both keep token buckets in a fixed number of slots chosen by a salted hash; nothing grows with
the number of sources or names. A key has two slots and spends from both; it passes while
either still holds a token (the fuller slot is the closer estimate of its own use, as the
smallest counter is in a count-min sketch), so another key throttles it only by draining both
of its slots, and no key gets more than its own budget. No I/O and no clock of its own: the
caller passes the time.
"""

from __future__ import annotations

import os
import socket
from array import array
from typing import Tuple

__all__ = ["SOURCE_SLOTS", "USER_SLOTS", "SourceLimiter", "UserFailureLimiter", "sourceKey"]

#: Slots of the per-source table: a power of two, two arrays of doubles (1 MiB).  Sized so
#: that 500 sources spending their whole burst at once throttle another source by collision
#: about once in ten such bursts (each source uses two of the slots).
SOURCE_SLOTS = 65536

#: Slots of the per-user tables (256 KiB of budgets, 256 KiB of trusted pairs).
USER_SLOTS = 16384

#: Seconds a user's successful authentication from an address keeps that address trusted
#: while the user's failure budget is spent.
TRUSTED_LIFETIME = 86400.0


def sourceKey(host: str) -> str:
    """
    What a source is limited by: the IPv4 address, or the /64 of an IPv6 address (one
    subscriber's prefix; an attacker holds a whole /64 as easily as one address).
    """
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except OSError:
        return host
    return packed[:8].hex()


class _Buckets:
    """
    Token buckets in two fixed arrays: C{rate} tokens a second up to C{burst}, two slots per
    key.
    """

    def __init__(self, rate: float, burst: float, slots: int) -> None:
        if slots & (slots - 1) or slots < 2:
            raise ValueError(f"slots must be a power of two, not {slots}")
        self._rate = rate
        self._burst = burst
        self._mask = slots - 1
        self._tokens = array("d", [burst]) * slots
        self._stamps = array("d", [0.0]) * slots
        self._salt = os.urandom(16)

    def _slots(self, key: object) -> Tuple[int, int]:
        digest = hash((self._salt, key))
        return digest & self._mask, (digest >> 32) & self._mask

    def _refilled(self, slot: int, now: float) -> float:
        elapsed = now - self._stamps[slot]
        tokens = self._tokens[slot]
        if elapsed > 0:
            tokens = min(self._burst, tokens + elapsed * self._rate)
        return tokens

    def available(self, key: object, now: float) -> bool:
        """
        Whether C{key} has a token now, without spending it.
        """
        first, second = self._slots(key)
        return max(self._refilled(first, now), self._refilled(second, now)) >= 1.0

    def spend(self, key: object, now: float) -> bool:
        """
        Spend a token of C{key}'s if it has one: C{True}; else C{False}, nothing spent.
        """
        first, second = self._slots(key)
        firstTokens = self._refilled(first, now)
        secondTokens = self._refilled(second, now)
        tokens, stamps = self._tokens, self._stamps
        stamps[first] = stamps[second] = now
        if max(firstTokens, secondTokens) < 1.0:
            tokens[first], tokens[second] = firstTokens, secondTokens
            return False
        # A slot another key drained stays at zero; the same slot twice loses one token.
        tokens[first] = max(0.0, firstTokens - 1.0)
        tokens[second] = tokens[first] if second == first else max(0.0, secondTokens - 1.0)
        return True


class SourceLimiter:
    """
    At most C{burst} answers at once and C{rate} a second to each source (L{sourceKey}), in
    fixed memory.
    """

    def __init__(self, rate: float, burst: float, slots: int = SOURCE_SLOTS) -> None:
        """
        @raise ValueError: C{rate} not positive, C{burst} below 1, or C{slots} not a power of
            two.
        """
        if rate <= 0 or burst < 1:
            raise ValueError(
                f"rate must be positive and burst at least 1, not {rate} and {burst}"
            )
        self.rate = rate
        self.burst = burst
        self._buckets = _Buckets(rate, burst, slots)

    def allow(self, host: str, now: float) -> bool:
        """
        May an answer go to C{host} now?  Counts it when it may.
        """
        return self._buckets.spend(sourceKey(host), now)

    def available(self, host: str, now: float) -> bool:
        """
        Whether C{host} has budget left, without spending any (for limits that count only
        failures: ask first, L{allow} on a failure).
        """
        return self._buckets.available(sourceKey(host), now)


class UserFailureLimiter:
    """
    At most C{perMinute} failed authentications a minute per user name (with a burst of as
    many), after which the name may be tried only from addresses it has authenticated from in
    the last L{TRUSTED_LIFETIME} seconds.

    The trusted addresses are one more fixed table: a slot per (name, source) holding a 63-bit
    tag of the pair and the time of its last success, overwritten by any other pair that lands
    there, so a trusted pair can be forgotten early but an untrusted one is never taken for
    trusted.
    """

    def __init__(self, perMinute: int, slots: int = USER_SLOTS) -> None:
        """
        @raise ValueError: C{perMinute} below 1, or C{slots} not a power of two.
        """
        if perMinute < 1:
            raise ValueError(f"perMinute must be at least 1, not {perMinute}")
        self.perMinute = perMinute
        self._failures = _Buckets(perMinute / 60.0, float(perMinute), slots)
        self._mask = slots - 1
        self._trustedTags = array("q", [0]) * slots
        self._trustedTimes = array("d", [0.0]) * slots
        self._salt = os.urandom(16)

    def _trustSlot(self, name: str, host: str) -> Tuple[int, int]:
        digest = hash((self._salt, name, sourceKey(host)))
        # Never 0: 0 marks an empty slot.
        return digest & self._mask, (digest & 0x7FFFFFFFFFFFFFFF) or 1

    def mayTry(self, name: str, host: str, now: float) -> bool:
        """
        May a request for C{name} from C{host} have its credentials checked now?
        """
        if self._failures.available(name, now):
            return True
        slot, tag = self._trustSlot(name, host)
        return (
            self._trustedTags[slot] == tag and now - self._trustedTimes[slot] < TRUSTED_LIFETIME
        )

    def failed(self, name: str, now: float) -> None:
        """
        Count a failed authentication of C{name}.
        """
        self._failures.spend(name, now)

    def succeeded(self, name: str, host: str, now: float) -> None:
        """
        Remember that C{name} authenticated from C{host}.
        """
        slot, tag = self._trustSlot(name, host)
        self._trustedTags[slot] = tag
        self._trustedTimes[slot] = now
