"""
Tests for L{twisted_turn.relay}.
"""

import errno
import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.relay import (
    RESERVATION_LIFETIME,
    NoRelayPort,
    RelayPortAllocator,
    addressFamily,
)


class FakeHandle:
    def __init__(self, host, port):
        self.address = (host, port)
        self.closed = False

    def close(self):
        self.closed = True


class FakeOpener:
    def __init__(self):
        self.busy = set()
        self.opened = []
        self.error = None

    def __call__(self, host, port):
        if self.error is not None:
            raise OSError(self.error, "cannot")
        if port in self.busy:
            raise OSError(errno.EADDRINUSE, "in use")
        handle = FakeHandle(host, port)
        self.opened.append(handle)
        return handle


class RelayPortAllocatorTests(SynchronousTestCase):
    def setUp(self):
        self.opener = FakeOpener()
        self.allocator = RelayPortAllocator(
            self.opener, ("203.0.113.10", "2001:db8::10"), 50000, 50009,
            random=random.Random(1),
        )

    def test_familyHosts(self):
        """
        There is one relay host per address family; a family without one gives L{None}.
        """
        self.assertEqual(self.allocator.hostFor(1), "203.0.113.10")
        self.assertEqual(self.allocator.hostFor(2), "2001:db8::10")
        only4 = RelayPortAllocator(self.opener, ("203.0.113.10",), 1, 2)
        self.assertIsNone(only4.hostFor(2))
        self.assertEqual(addressFamily("::1"), 2)

    def test_firstHostOfEachFamily(self):
        """
        Given several relay hosts, the first of each family is used; C{relayHosts} lists them.
        """
        allocator = RelayPortAllocator(
            self.opener, ("2001:db8::10", "203.0.113.10", "203.0.113.11", "2001:db8::11"), 1, 2
        )
        self.assertEqual(allocator.hostFor(1), "203.0.113.10")
        self.assertEqual(allocator.hostFor(2), "2001:db8::10")
        self.assertEqual(set(allocator.relayHosts), {"203.0.113.10", "2001:db8::10"})

    def test_familiesHaveTheirOwnPorts(self):
        """
        Each family's relay host has the whole port range: exhausting the IPv4 one leaves the
        IPv6 one untouched, and L{RelayPortAllocator.holds} answers per host.
        """
        ports4 = [self.allocator.open(1, 0.0) for _ in range(10)]
        self.assertRaises(NoRelayPort, self.allocator.open, 1, 0.0)
        handle, host, port, _ = self.allocator.open(2, 0.0)
        self.assertEqual(host, "2001:db8::10")
        self.assertEqual(handle.address, (host, port))
        self.assertTrue(self.allocator.holds("2001:db8::10", port))
        self.assertTrue(self.allocator.holds("203.0.113.10", port))
        self.allocator.release(*ports4[0][1:3], ports4[0][0])
        self.assertFalse(self.allocator.holds("203.0.113.10", ports4[0][2]))
        self.assertTrue(self.allocator.holds("2001:db8::10", port))
        self.assertEqual(len(self.allocator.inUse["2001:db8::10"]), 1)

    def test_missingFamilyRaises(self):
        """
        Opening a port of a family the server has no relay host for raises L{KeyError} (the
        server checks L{RelayPortAllocator.hostFor} first and answers 440).
        """
        only4 = RelayPortAllocator(self.opener, ("203.0.113.10",), 1, 2)
        self.assertRaises(KeyError, only4.open, 2, 0.0)

    def test_portsInRangeAndDistinct(self):
        """
        Every port of the range is handed out exactly once, then L{NoRelayPort} is raised.
        """
        ports = [self.allocator.open(1, 0.0)[2] for _ in range(10)]
        self.assertEqual(sorted(ports), list(range(50000, 50010)))
        self.assertRaises(NoRelayPort, self.allocator.open, 1, 0.0)

    def test_releaseFreesPort(self):
        """
        A released port is closed and can be opened again.
        """
        handles = [self.allocator.open(1, 0.0) for _ in range(10)]
        handle, host, port, _ = handles[3]
        self.allocator.release(host, port, handle)
        self.assertTrue(handle.closed)
        self.assertEqual(self.allocator.open(1, 0.0)[2], port)

    def test_busyPortsSkipped(self):
        """
        A port another process holds (the bind fails) is skipped.
        """
        self.opener.busy = set(range(50000, 50009))
        self.assertEqual(self.allocator.open(1, 0.0)[2], 50009)
        self.assertRaises(NoRelayPort, self.allocator.open, 1, 0.0)

    def test_otherErrorsStopTheSearch(self):
        """
        A bind error that no other port would avoid (out of file descriptors) ends the search
        at once with L{NoRelayPort}, instead of trying every port of the range.
        """
        self.opener.error = errno.EMFILE
        error = self.assertRaises(NoRelayPort, self.allocator.open, 1, 0.0)
        self.assertIn("cannot open a relay socket", str(error))
        self.assertEqual(self.opener.opened, [])

    def test_reservationOwners(self):
        """
        Reservations are counted per owner and in all, until claimed or expired.
        """
        _, _, _, first = self.allocator.open(1, 0.0, even=True, reserveNext=True, owner="a")
        self.allocator.open(1, 0.0, even=True, reserveNext=True, owner="b")
        self.assertEqual(self.allocator.reservationCount(), 2)
        self.assertEqual(self.allocator.reservationCount("a", anyOwner=False), 1)
        self.allocator.takeReservation(first, 1.0)
        self.assertEqual(self.allocator.reservationCount("a", anyOwner=False), 0)
        self.allocator.sweep(RESERVATION_LIFETIME + 1)
        self.assertEqual(self.allocator.reservationCount(), 0)

    def test_evenPort(self):
        """
        EVEN-PORT gives an even port.
        """
        for _ in range(5):
            self.assertEqual(self.allocator.open(1, 0.0, even=True)[2] % 2, 0)
        self.assertRaises(NoRelayPort, self.allocator.open, 1, 0.0, even=True)

    def test_reservation(self):
        """
        EVEN-PORT with R reserves the next port under a token; the token claims it once.
        """
        handle, host, port, token = self.allocator.open(1, 0.0, even=True, reserveNext=True)
        self.assertEqual(port % 2, 0)
        self.assertEqual(len(token), 8)
        self.assertIn(port + 1, self.allocator.inUse[host])
        claimed = self.allocator.takeReservation(token, 1.0)
        self.assertEqual(claimed[1:], (host, port + 1))
        self.assertIsNone(self.allocator.takeReservation(token, 1.0))

    def test_reservationExpires(self):
        """
        An unclaimed reservation is freed by the sweep after its lifetime, and a late claim
        fails and frees the port.
        """
        _, host, port, token = self.allocator.open(1, 0.0, even=True, reserveNext=True)
        self.assertEqual(self.allocator.sweep(RESERVATION_LIFETIME), 0)
        self.assertEqual(self.allocator.sweep(RESERVATION_LIFETIME + 1), 1)
        self.assertNotIn(port + 1, self.allocator.inUse[host])
        _, host, port, token = self.allocator.open(1, 0.0, even=True, reserveNext=True)
        self.assertIsNone(self.allocator.takeReservation(token, RESERVATION_LIFETIME + 1))
        self.assertNotIn(port + 1, self.allocator.inUse[host])

    def test_reserveNeedsPair(self):
        """
        A reservation needs both the even port and the next one free; when the next one
        cannot be bound, the even one is released and another pair tried.
        """
        self.opener.busy = {50001, 50003, 50005, 50007}
        _, host, port, token = self.allocator.open(1, 0.0, even=True, reserveNext=True)
        self.assertEqual(port, 50008)
        self.assertEqual(self.allocator.inUse[host], {50008, 50009})

    def test_closeAllFreesReservations(self):
        """
        L{RelayPortAllocator.closeAll} frees every reservation.
        """
        self.allocator.open(1, 0.0, even=True, reserveNext=True)
        self.allocator.closeAll()
        self.assertEqual(len(self.allocator.inUse["203.0.113.10"]), 1)
