"""
Tests for L{twisted_turn.allocation}.
"""

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.allocation import (
    CHANNEL_COOLDOWN,
    Allocation,
    AllocationTable,
    FiveTuple,
)

PEER = ("8.8.8.8", 5000)
OTHER_PEER = ("8.8.4.4", 5000)


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
