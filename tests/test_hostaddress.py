"""
Tests for L{twisted_turn.hostaddress}: the kernel's own answers for this host's loopback and
for addresses it cannot have (nothing is sent). Secondary addresses, locally routed ranges and
addresses behind a route, in namespaces of their own, are in
C{tests/integration/test_peerpolicy.py}.
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
        All of 127.0.0.0/8 is local, and so are its IPv4-mapped spelling and, where IPv6 is
        on, C{::1}.
        """
        for host in ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::ffff:127.0.0.1"]:
            self.assertTrue(isLocalAddress(host), host)
        if not socket.has_ipv6 or not isLocalAddress("::1"):
            raise SkipTest("IPv6 loopback is off on this host")

    def test_unspecifiedAndBroadcastAreLocal(self) -> None:
        """
        The unspecified addresses reach the local host, and the limited broadcast is delivered
        here too: both are local.
        """
        for host in ["0.0.0.0", "::", "255.255.255.255"]:
            self.assertTrue(isLocalAddress(host), host)

    def test_notLocal(self) -> None:
        """
        Addresses of the Internet and multicast are not local, nor is anything that is not an
        address.
        """
        for host in ["8.8.8.8", "2606:4700::1", "224.0.0.1", "ff02::1", "", "localhost",
                     "1.2.3", None, b"127.0.0.1"]:
            self.assertFalse(isLocalAddress(host), host)  # type: ignore[arg-type]

    def test_failureCountsAsLocal(self) -> None:
        """
        When the kernel cannot be asked (out of descriptors, say), the address is taken for
        local: the policy then refuses rather than allows.
        """
        def exhausted(*args: object, **kwargs: object) -> None:
            raise OSError(24, "Too many open files")

        self.patch(hostaddress._routes, "routeType", exhausted)
        self.patch(hostaddress, "_bindable", exhausted)
        self.assertTrue(isLocalAddress("8.8.8.8"))

    def test_routeTypes(self) -> None:
        """
        On Linux, a local, broadcast or anycast route means local; a unicast, multicast or
        missing route does not.
        """
        if not hasattr(socket, "AF_NETLINK"):
            raise SkipTest("no rtnetlink here")
        for routeType, local in [(1, False), (2, True), (3, True), (4, True), (5, False),
                                 (None, False)]:
            self.patch(hostaddress._routes, "routeType", lambda address, t=routeType: t)
            self.assertEqual(isLocalAddress("192.0.2.77"), local, routeType)

    def test_askedAgainAfterAFailure(self) -> None:
        """
        A failed question closes the rtnetlink socket; the next one opens a new one and gets
        the kernel's answer.
        """
        if not hasattr(socket, "AF_NETLINK"):
            raise SkipTest("no rtnetlink here")
        query = hostaddress._RouteQuery()
        sock = query._open()
        sock.close()
        self.assertRaises(OSError, query.routeType, hostaddress.ipaddress.ip_address("8.8.8.8"))
        self.assertEqual(query.routeType(hostaddress.ipaddress.ip_address("127.0.0.1")), 2)
