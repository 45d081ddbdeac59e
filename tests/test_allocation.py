"""
Tests for L{twisted_turn.allocation}.
"""

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.allocation import (
    CHANNEL_COOLDOWN,
    Allocation,
    AllocationTable,
    FiveTuple,
    familyOf,
)

PEER = ("8.8.8.8", 5000)
OTHER_PEER = ("8.8.4.4", 5000)
PEER6 = ("2606:4700::1", 5000)


class FakeHandle:
    """
    A relay handle with a transport of its own, told apart by name.
    """

    def __init__(self, name):
        self.transport = name


def makeAllocation(clientPort=40000, username="alice", expiresAt=100.0):
    fiveTuple = FiveTuple("192.0.2.5", clientPort, "198.51.100.1", 3478)
    return Allocation(
        fiveTuple, username, ("203.0.113.10", 50000),
        ("203.0.113.10", 50000), expiresAt,
    )


class PermissionTests(SynchronousTestCase):
    def test_permissionExpires(self):
        """
        A permission is valid up to and including its expiry time, and not after.
        """
        allocation = makeAllocation()
        allocation.installPermission("8.8.8.8", 300.0)
        self.assertTrue(allocation.hasPermission("8.8.8.8", 300.0))
        self.assertFalse(allocation.hasPermission("8.8.8.8", 300.5))
        self.assertFalse(allocation.hasPermission("8.8.4.4", 0.0))

    def test_pruneForgetsExpiredPermissions(self):
        """
        L{Allocation.prune} removes expired permissions and keeps live ones.
        """
        allocation = makeAllocation()
        allocation.installPermission("8.8.8.8", 10.0)
        allocation.installPermission("8.8.4.4", 50.0)
        allocation.prune(20.0)
        self.assertEqual(list(allocation.permissions), ["8.8.4.4"])


class ChannelTests(SynchronousTestCase):
    def test_bindAndRefresh(self):
        """
        Binding the same number to the same peer again refreshes the existing binding.
        """
        allocation = makeAllocation()
        first = allocation.bindChannel(0x4000, PEER, 600.0)
        second = allocation.bindChannel(0x4000, PEER, 900.0)
        self.assertIs(first, second)
        self.assertEqual(second.expiresAt, 900.0)
        self.assertIs(allocation.peerChannels[PEER], first)
        self.assertEqual(first.header, b"\x40\x00")

    def test_numberBoundToOtherPeerConflicts(self):
        """
        A channel number bound to one peer cannot be bound to another, during the binding and
        during the cooldown after it expires; after that it can.
        """
        allocation = makeAllocation()
        allocation.bindChannel(0x4001, PEER, 600.0)
        self.assertTrue(allocation.channelConflict(0x4001, OTHER_PEER, 100.0))
        self.assertTrue(allocation.channelConflict(0x4001, OTHER_PEER, 600.0 + CHANNEL_COOLDOWN))
        self.assertFalse(
            allocation.channelConflict(0x4001, OTHER_PEER, 601.0 + CHANNEL_COOLDOWN)
        )

    def test_peerBoundToOtherNumberConflicts(self):
        """
        A peer bound to one channel number cannot be bound to another number.
        """
        allocation = makeAllocation()
        allocation.bindChannel(0x4001, PEER, 600.0)
        self.assertTrue(allocation.channelConflict(0x4002, PEER, 100.0))
        self.assertFalse(allocation.channelConflict(0x4001, PEER, 100.0))
        self.assertFalse(allocation.channelConflict(0x4002, OTHER_PEER, 100.0))

    def test_rebindAfterCooldownReplaces(self):
        """
        Once the cooldown is over, the number can go to another peer and the old peer's entry
        is gone.
        """
        allocation = makeAllocation()
        allocation.bindChannel(0x4001, PEER, 600.0)
        allocation.bindChannel(0x4001, OTHER_PEER, 2000.0)
        self.assertEqual(allocation.channels[0x4001].peer, OTHER_PEER)
        self.assertNotIn(PEER, allocation.peerChannels)

    def test_pruneKeepsCoolingChannels(self):
        """
        An expired binding is kept through its cooldown so its number stays reserved.
        """
        allocation = makeAllocation()
        allocation.bindChannel(0x4001, PEER, 600.0)
        allocation.prune(700.0)
        self.assertIn(0x4001, allocation.channels)
        allocation.prune(601.0 + CHANNEL_COOLDOWN)
        self.assertEqual(allocation.channels, {})
        self.assertEqual(allocation.peerChannels, {})


class AllocationTableTests(SynchronousTestCase):
    def test_lookupByFiveTupleAndListener(self):
        """
        An added allocation is found by its 5-tuple and in its listener's client dictionary.
        """
        table = AllocationTable()
        allocation = makeAllocation()
        table.add(allocation)
        self.assertIs(table.get(allocation.fiveTuple), allocation)
        clients = table.clientsOf("udp", ("198.51.100.1", 3478))
        self.assertIs(clients[("192.0.2.5", 40000)], allocation)
        self.assertEqual(len(table), 1)
        self.assertIsNone(table.get(FiveTuple("192.0.2.5", 1, "198.51.100.1", 3478)))

    def test_userCounts(self):
        """
        Allocations are counted per user, and the count goes down on removal.
        """
        table = AllocationTable()
        first, second = makeAllocation(1), makeAllocation(2)
        table.add(first)
        table.add(second)
        self.assertEqual(table.countForUser("alice"), 2)
        self.assertTrue(table.remove(first))
        self.assertFalse(table.remove(first))
        self.assertEqual(table.countForUser("alice"), 1)
        table.remove(second)
        self.assertEqual(table.countForUser("alice"), 0)
        self.assertEqual(len(table), 0)

    def test_sweepRemovesExpired(self):
        """
        L{AllocationTable.sweep} returns and removes only expired allocations.
        """
        table = AllocationTable()
        old, live = makeAllocation(1, expiresAt=10.0), makeAllocation(2, expiresAt=100.0)
        table.add(old)
        table.add(live)
        self.assertEqual(table.sweep(50.0), [old])
        self.assertEqual(list(table), [live])


def makeDualStack(expiresAt=100.0):
    """
    A dual-stack allocation whose relay transports are the strings C{"v4"} and C{"v6"}; the
    IPv6 half is added first, to show the order does not depend on it.
    """
    fiveTuple = FiveTuple("192.0.2.5", 40000, "198.51.100.1", 3478)
    allocation = Allocation(
        fiveTuple, "alice", ("2001:db8::10", 50002), ("2001:db8::10", 50002), expiresAt,
        FakeHandle("v6"),
    )
    allocation.addRelayed(("203.0.113.10", 50001), ("198.51.100.9", 50001), FakeHandle("v4"))
    return allocation


class RelayedAddressTests(SynchronousTestCase):
    def test_singleFamily(self):
        """
        A single-family allocation has one relayed address; its transport is C{relay}, used
        for every peer, and C{relay6} is L{None}.
        """
        allocation = Allocation(
            FiveTuple("192.0.2.5", 1, "198.51.100.1", 3478), None, ("203.0.113.10", 50000),
            ("203.0.113.10", 50000), 10.0, FakeHandle("v4"),
        )
        self.assertEqual(allocation.families, (1,))
        self.assertEqual(allocation.relay, "v4")
        self.assertIsNone(allocation.relay6)
        self.assertEqual(allocation.relayFor("8.8.8.8"), "v4")
        self.assertTrue(allocation.hasFamily(1))
        self.assertFalse(allocation.hasFamily(2))

    def test_dualStackIPv4First(self):
        """
        A dual-stack allocation keeps its IPv4 relayed address first, whatever the order they
        were added in: C{relayAddress}, C{externalAddress}, C{relay} and C{relayPort} describe
        it, and C{relay6} is the IPv6 transport.
        """
        allocation = makeDualStack()
        self.assertEqual(allocation.families, (1, 2))
        self.assertEqual(allocation.relayAddress, ("203.0.113.10", 50001))
        self.assertEqual(allocation.externalAddress, ("198.51.100.9", 50001))
        self.assertEqual(allocation.relay, "v4")
        self.assertEqual(allocation.relayPort.transport, "v4")
        self.assertEqual(allocation.relay6, "v6")
        self.assertEqual(
            [relayed.address for relayed in allocation.relayed],
            [("203.0.113.10", 50001), ("2001:db8::10", 50002)],
        )

    def test_relayForPicksByFamily(self):
        """
        Data to a peer leaves through the relayed address of the peer's family.
        """
        allocation = makeDualStack()
        self.assertEqual(allocation.relayFor("8.8.8.8"), "v4")
        self.assertEqual(allocation.relayFor("2606:4700::1"), "v6")
        self.assertEqual(allocation.relayFor("::ffff:8.8.8.8"), "v6")
        self.assertEqual((familyOf("8.8.8.8"), familyOf("::1")), (1, 2))

    def test_sameFamilyTwiceRefused(self):
        """
        An allocation has at most one relayed address per family.
        """
        allocation = makeDualStack()
        self.assertRaises(
            ValueError, allocation.addRelayed, ("203.0.113.10", 1), ("203.0.113.10", 1), None
        )

    def test_channelsSendByPeerFamily(self):
        """
        A channel sends through the relay of its peer's family, chosen when it is bound.
        """
        allocation = makeDualStack()
        self.assertEqual(allocation.bindChannel(0x4000, PEER, 50.0).relay, "v4")
        self.assertEqual(allocation.bindChannel(0x4001, PEER6, 50.0).relay, "v6")

    def test_dropFamily(self):
        """
        Dropping one family of a dual-stack allocation removes its relayed address and the
        permissions of that family, and expires its channels at once (they then cool down like
        any expired binding); the other family is untouched.
        """
        allocation = makeDualStack()
        allocation.installPermission("8.8.8.8", 50.0)
        allocation.installPermission("2606:4700::1", 50.0)
        allocation.restrictedPeers.add("2001:db8::10")
        allocation.installPermission("2001:db8::10", 50.0)
        allocation.bindChannel(0x4000, PEER, 50.0)
        six = allocation.bindChannel(0x4001, PEER6, 50.0)
        dropped = allocation.dropFamily(2, 20.0)
        self.assertEqual(dropped.address, ("2001:db8::10", 50002))
        self.assertEqual(dropped.handle.transport, "v6")
        self.assertEqual(allocation.families, (1,))
        self.assertIsNone(allocation.relay6)
        self.assertEqual(allocation.relayFor("2606:4700::1"), "v4")
        self.assertEqual(list(allocation.permissions), ["8.8.8.8"])
        self.assertEqual(allocation.restrictedPeers, set())
        self.assertLess(six.expiresAt, 20.0)
        self.assertGreater(six.expiresAt, 19.999)
        self.assertEqual(allocation.channels[0x4000].expiresAt, 50.0)
        self.assertTrue(allocation.channelConflict(0x4001, OTHER_PEER, 20.0 + 299))
        self.assertFalse(allocation.channelConflict(0x4001, OTHER_PEER, 20.0 + 301))

    def test_dropIPv4Family(self):
        """
        Dropping the IPv4 half leaves the IPv6 relayed address as the first: C{relay} and
        C{relayAddress} follow it.
        """
        allocation = makeDualStack()
        allocation.dropFamily(1, 20.0)
        self.assertEqual(allocation.families, (2,))
        self.assertEqual(allocation.relay, "v6")
        self.assertIsNone(allocation.relay6)
        self.assertEqual(allocation.relayAddress, ("2001:db8::10", 50002))

    def test_dropOnlyOrMissingFamilyRefused(self):
        """
        The last relayed address is not dropped (the allocation is deleted instead), nor is a
        family the allocation does not have.
        """
        allocation = makeDualStack()
        self.assertRaises(ValueError, allocation.dropFamily, 3, 20.0)
        allocation.dropFamily(2, 20.0)
        self.assertRaises(ValueError, allocation.dropFamily, 1, 20.0)
        self.assertEqual(allocation.families, (1,))


class DropPeerTests(SynchronousTestCase):
    """
    L{Allocation.dropPeer}: what a policy reload does to a peer it now refuses.
    """

    def test_permissionAndChannelsGo(self):
        """
        The peer's permission and every channel to it go; other peers stay.
        """
        from twisted_turn.allocation import Allocation, FiveTuple

        allocation = Allocation(
            FiveTuple("192.0.2.5", 1, "198.51.100.1", 3478), "alice", ("203.0.113.10", 50000),
            ("203.0.113.10", 50000), 1000.0,
        )
        allocation.installPermission("8.8.8.8", 100.0)
        allocation.installPermission("1.1.1.1", 100.0)
        allocation.restrictedPeers.add("8.8.8.8")
        allocation.bindChannel(0x4000, ("8.8.8.8", 1), 100.0)
        allocation.bindChannel(0x4001, ("1.1.1.1", 1), 100.0)
        self.assertEqual(allocation.dropPeer("8.8.8.8"), 2)
        self.assertEqual(set(allocation.permissions), {"1.1.1.1"})
        self.assertEqual(set(allocation.channels), {0x4001})
        self.assertNotIn(("8.8.8.8", 1), allocation.peerChannels)
        self.assertEqual(allocation.restrictedPeers, set())
        self.assertEqual(allocation.dropPeer("9.9.9.9"), 0)
