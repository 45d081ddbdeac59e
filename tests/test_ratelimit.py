"""
Tests for L{twisted_turn.ratelimit}.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.ratelimit import (
    SOURCE_SLOTS,
    TRUSTED_LIFETIME,
    SourceLimiter,
    UserFailureLimiter,
    sourceKey,
)

NOW = 1_700_000_000.0


class SourceKeyTests(SynchronousTestCase):
    """
    Tests for L{sourceKey}.
    """

    def test_ipv4WholeAddress(self) -> None:
        """
        An IPv4 source is limited by its whole address.
        """
        self.assertEqual(sourceKey("192.0.2.1"), "192.0.2.1")
        self.assertNotEqual(sourceKey("192.0.2.1"), sourceKey("192.0.2.2"))

    def test_ipv6Slash64(self) -> None:
        """
        IPv6 sources of one /64 share a key, whatever their spelling or scope; another /64
        has another key.
        """
        self.assertEqual(sourceKey("2001:db8::1"), sourceKey("2001:db8:0:0:ffff::2"))
        self.assertEqual(sourceKey("fe80::1%eth0"), sourceKey("fe80::2"))
        self.assertNotEqual(sourceKey("2001:db8::1"), sourceKey("2001:db8:0:1::1"))

    def test_unparseableKeptAsIs(self) -> None:
        """
        A host that is not an IPv6 literal is its own key rather than an error.
        """
        self.assertEqual(sourceKey("not:an:address:at:all:::x"), "not:an:address:at:all:::x")


class SourceLimiterTests(SynchronousTestCase):
    """
    Tests for L{SourceLimiter}.
    """

    def test_burstThenRate(self) -> None:
        """
        A source gets C{burst} answers at once, then C{rate} a second.
        """
        limiter = SourceLimiter(rate=10, burst=20)
        allowed = sum(limiter.allow("192.0.2.1", NOW) for _ in range(1000))
        self.assertEqual(allowed, 20)
        self.assertFalse(limiter.allow("192.0.2.1", NOW + 0.05))
        allowed = sum(limiter.allow("192.0.2.1", NOW + 1.0) for _ in range(1000))
        self.assertEqual(allowed, 10)

    def test_steadyFloodGetsTheRate(self) -> None:
        """
        2000 requests spread over one second get at most the burst plus the rate.
        """
        limiter = SourceLimiter(rate=10, burst=10)
        allowed = sum(limiter.allow("192.0.2.1", NOW + i / 2000) for i in range(2000))
        self.assertLessEqual(allowed, 10 + 10)
        self.assertGreaterEqual(allowed, 19)

    def test_refillCappedAtBurst(self) -> None:
        """
        A long silence refills to the burst, not beyond.
        """
        limiter = SourceLimiter(rate=10, burst=5)
        limiter.allow("192.0.2.1", NOW)
        allowed = sum(limiter.allow("192.0.2.1", NOW + 3600) for _ in range(100))
        self.assertEqual(allowed, 5)

    def test_sourcesIndependent(self) -> None:
        """
        A source that spent its budget does not spend another's (barring a collision in both
        of its slots).
        """
        limiter = SourceLimiter(rate=1, burst=1)
        for _ in range(100):
            limiter.allow("192.0.2.1", NOW)
        self.assertTrue(limiter.allow("192.0.2.2", NOW))

    def test_ipv6PrefixShared(self) -> None:
        """
        Rotating the interface identifier inside a /64 does not buy more answers.
        """
        limiter = SourceLimiter(rate=1, burst=3)
        allowed = sum(limiter.allow(f"2001:db8::{i:x}", NOW) for i in range(1, 100))
        self.assertEqual(allowed, 3)
        self.assertTrue(limiter.allow("2001:db8:0:1::1", NOW))

    def test_clockGoingBackwards(self) -> None:
        """
        A time earlier than the last one refills nothing (and grants nothing extra).
        """
        limiter = SourceLimiter(rate=10, burst=2)
        limiter.allow("192.0.2.1", NOW)
        limiter.allow("192.0.2.1", NOW)
        self.assertFalse(limiter.allow("192.0.2.1", NOW - 100))

    def test_fixedMemory(self) -> None:
        """
        100,000 distinct sources leave the tables at the size they started with.
        """
        limiter = SourceLimiter(rate=10, burst=10)
        buckets = limiter._buckets
        before = (len(buckets._tokens), len(buckets._stamps))
        for i in range(100_000):
            limiter.allow(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", NOW + i / 1e5)
        self.assertEqual((len(buckets._tokens), len(buckets._stamps)), before)
        self.assertEqual(before, (SOURCE_SLOTS, SOURCE_SLOTS))

    def test_collisionNeedsBothSlots(self) -> None:
        """
        With a tiny table, a source whose two slots another source drained is throttled,
        while one that shares only one of them is not, and draining someone else's slot
        gives the drainer nothing more.
        """
        limiter = SourceLimiter(rate=1, burst=1, slots=64)
        buckets = limiter._buckets
        attacker = "192.0.2.1"
        drained = set(buckets._slots(sourceKey(attacker)))
        limiter.allow(attacker, NOW)
        for i in range(2, 5000):
            host = f"198.51.{i >> 8 & 255}.{i & 255}"
            slots = set(buckets._slots(sourceKey(host)))
            if slots <= drained:
                self.assertFalse(limiter.allow(host, NOW), host)
                break
        for i in range(2, 5000):
            host = f"203.0.{i >> 8 & 255}.{i & 255}"
            slots = set(buckets._slots(sourceKey(host)))
            if len(slots & drained) == 1 and len(slots) == 2:
                self.assertTrue(limiter.allow(host, NOW), host)
                break
        else:
            self.fail("no source sharing exactly one slot")

    def test_badParameters(self) -> None:
        """
        A rate or burst below 1, or a table size that is not a power of two, is refused.
        """
        self.assertRaises(ValueError, SourceLimiter, rate=0, burst=10)
        self.assertRaises(ValueError, SourceLimiter, rate=-1, burst=10)
        self.assertRaises(ValueError, SourceLimiter, rate=10, burst=0)
        self.assertRaises(ValueError, SourceLimiter, rate=10, burst=10, slots=1000)

    @settings(max_examples=50)
    @given(
        st.integers(1, 50), st.integers(1, 50),
        st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=300),
    )
    def test_neverMoreThanBurstPlusRate(self, rate, burst, offsets) -> None:
        """
        Whatever the timing, a source gets at most C{burst + rate * elapsed} answers.
        """
        limiter = SourceLimiter(rate=rate, burst=burst)
        times = sorted(NOW + offset for offset in offsets)
        allowed = sum(limiter.allow("192.0.2.1", t) for t in times)
        self.assertLessEqual(allowed, burst + rate * (times[-1] - times[0]) + 1e-6)


class UserFailureLimiterTests(SynchronousTestCase):
    """
    Tests for L{UserFailureLimiter}.
    """

    def test_failuresThenLocked(self) -> None:
        """
        After C{perMinute} failures a name may not be tried from an address it never
        authenticated from; a minute later a share of the budget is back.
        """
        limiter = UserFailureLimiter(perMinute=5)
        for _ in range(5):
            self.assertTrue(limiter.mayTry("alice", "192.0.2.66", NOW))
            limiter.failed("alice", NOW)
        self.assertFalse(limiter.mayTry("alice", "192.0.2.66", NOW))
        self.assertTrue(limiter.mayTry("bob", "192.0.2.66", NOW))
        self.assertFalse(limiter.mayTry("alice", "192.0.2.66", NOW + 5))
        self.assertTrue(limiter.mayTry("alice", "192.0.2.66", NOW + 12.5))

    def test_trustedAddressNotLockedOut(self) -> None:
        """
        A name that authenticated from an address stays tryable from it (and its /64) while
        its budget is spent from elsewhere, for L{TRUSTED_LIFETIME}.
        """
        limiter = UserFailureLimiter(perMinute=3)
        limiter.succeeded("alice", "192.0.2.5", NOW)
        limiter.succeeded("alice", "2001:db8::5", NOW)
        for _ in range(50):
            limiter.failed("alice", NOW)
        self.assertFalse(limiter.mayTry("alice", "192.0.2.66", NOW))
        self.assertTrue(limiter.mayTry("alice", "192.0.2.5", NOW))
        self.assertTrue(limiter.mayTry("alice", "2001:db8::77", NOW))
        self.assertFalse(limiter.mayTry("alice", "2001:db8:0:1::5", NOW))

    def test_trustIsPerName(self) -> None:
        """
        An address trusted for one name is not trusted for another whose budget is spent.
        """
        limiter = UserFailureLimiter(perMinute=1)
        limiter.succeeded("alice", "192.0.2.5", NOW)
        limiter.failed("bob", NOW)
        self.assertFalse(limiter.mayTry("bob", "192.0.2.5", NOW))

    def test_trustExpires(self) -> None:
        """
        Past L{TRUSTED_LIFETIME}, a trusted address is an ordinary one.
        """
        limiter = UserFailureLimiter(perMinute=1)
        limiter.succeeded("alice", "192.0.2.5", NOW)
        later = NOW + TRUSTED_LIFETIME + 1
        limiter.failed("alice", later)
        self.assertFalse(limiter.mayTry("alice", "192.0.2.5", later))

    def test_fixedMemory(self) -> None:
        """
        Many names and addresses leave the tables at their size.
        """
        limiter = UserFailureLimiter(perMinute=10)
        before = len(limiter._trustedTags), len(limiter._failures._tokens)
        for i in range(50_000):
            limiter.failed(f"user{i}", NOW)
            limiter.succeeded(f"user{i}", f"10.0.{i >> 8 & 255}.{i & 255}", NOW)
        self.assertEqual((len(limiter._trustedTags), len(limiter._failures._tokens)), before)

    def test_badParameters(self) -> None:
        """
        A budget below one failure a minute is refused.
        """
        self.assertRaises(ValueError, UserFailureLimiter, perMinute=0)
