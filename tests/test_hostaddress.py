"""
Tests for L{twisted_turn.hostaddress}: the kernel's own answers for this host's loopback and
for addresses it cannot have (nothing is sent). The secondary addresses and locally routed
ranges of another namespace are in C{tests/integration/test_peerpolicy.py}.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn import hostaddress
from twisted_turn.hostaddress import isLocalAddress


class IsLocalAddressTests(SynchronousTestCase):
    """
    Tests for L{isLocalAddress}.
    """

    def test_loopback(self) -> None:
        """
        All of 127.0.0.0/8 is local (it is routed locally with a preferred source, so the bind
        answers), and so are its IPv4-mapped spelling and, where IPv6 is on, C{::1}.
        """
        for host in ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::ffff:127.0.0.1"]:
            self.assertTrue(isLocalAddress(host), host)
        if socket.has_ipv6 and isLocalAddress("::1") is False:
            raise SkipTest("IPv6 loopback is off on this host")
        self.assertTrue(isLocalAddress("::1"))

    def test_notLocal(self) -> None:
        """
        Addresses of the Internet, multicast, broadcast and the unspecified addresses are not
        local, nor is anything that is not an address.
        """
        for host in ["8.8.8.8", "2606:4700::1", "224.0.0.1", "ff02::1", "255.255.255.255",
                     "0.0.0.0", "::", "fe80::1%nosuchinterface", "", "localhost", "1.2.3"]:
            self.assertFalse(isLocalAddress(host), host)

    def test_nonlocalBindFallsBackToTheRoute(self) -> None:
        """
        Where any address can be bound, a bindable address is local only if the route says
        so: 127.0.0.1 (the destination is its own source) but not 8.8.8.8.
        """
        self.patch(hostaddress, "_nonlocalBind", lambda family: True)
        self.patch(hostaddress, "_bindable", lambda address, family: True)
        self.assertTrue(isLocalAddress("127.0.0.1"))
        self.assertFalse(isLocalAddress("8.8.8.8"))
