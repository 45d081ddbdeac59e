# -*- test-case-name: tests.test_policy -*-
"""
Tests for L{twisted_turn.policy}.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.policy import AddressRange, PeerPolicy, canonicalPeer, parseAddressRange

# Each default range with an address inside it and, where the range has a neighbour that is
# ordinary unicast, the address just outside it.
DEFAULT_DENIED = [
    ("0.0.0.0/8", "0.1.2.3", "1.0.0.0"),
    ("10.0.0.0/8", "10.20.30.40", "11.0.0.0"),
    ("100.64.0.0/10", "100.127.255.255", "100.128.0.0"),
    ("127.0.0.0/8", "127.0.0.1", "128.0.0.0"),
    ("169.254.0.0/16", "169.254.169.254", "169.255.0.0"),
    ("172.16.0.0/12", "172.31.255.255", "172.32.0.0"),
    ("192.0.0.0/24", "192.0.0.170", "192.0.1.0"),
    ("192.0.2.0/24", "192.0.2.1", "192.0.3.0"),
    ("192.31.196.0/24", "192.31.196.1", "192.31.197.0"),
    ("192.52.193.0/24", "192.52.193.1", "192.52.194.0"),
    ("192.88.99.0/24", "192.88.99.1", "192.88.100.0"),
    ("192.168.0.0/16", "192.168.1.1", "192.169.0.0"),
    ("192.175.48.0/24", "192.175.48.6", "192.175.49.0"),
    ("198.18.0.0/15", "198.19.255.255", "198.20.0.0"),
    ("198.51.100.0/24", "198.51.100.7", "198.51.101.0"),
    ("203.0.113.0/24", "203.0.113.200", "203.0.114.0"),
    ("224.0.0.0/4", "239.255.255.250", "223.255.255.255"),
    ("240.0.0.0/4", "255.255.255.255", None),
    ("::/3", "1000::1", "2000::"),
    ("4000::/2", "5f00::1", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("8000::/1", "fe80::1", None),
    ("2001::/23", "2001:0:4136:e378::1", "2001:200::"),
    ("2001:db8::/32", "2001:db8::1", "2001:db9::"),
    ("2620:4f:8000::/48", "2620:4f:8000::53", "2620:4f:8001::"),
    ("3fff::/20", "3fff::1", "3fff:1000::"),
]

# IANA's special-purpose address registries, row by row (the IPv4 registry, and the IPv6
# registry as updated on 2025-10-09), with their "Globally Reachable" column (None for N/A) and
# what the policy does: "denied", or "embedded" (the IPv6 forms carrying an IPv4 address, which
# are judged as that address).  docs/security.md has the same table with the reasons.
IANA_SPECIAL_PURPOSE = [
    ("0.0.0.0/8", '"This network"', False, "denied"),
    ("0.0.0.0/32", '"This host on this network"', False, "denied"),
    ("10.0.0.0/8", "Private-Use", False, "denied"),
    ("100.64.0.0/10", "Shared Address Space", False, "denied"),
    ("127.0.0.0/8", "Loopback", False, "denied"),
    ("169.254.0.0/16", "Link Local", False, "denied"),
    ("172.16.0.0/12", "Private-Use", False, "denied"),
    ("192.0.0.0/24", "IETF Protocol Assignments", False, "denied"),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", False, "denied"),
    ("192.0.0.8/32", "IPv4 dummy address", False, "denied"),
    ("192.0.0.9/32", "Port Control Protocol Anycast", True, "denied"),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", True, "denied"),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", False, "denied"),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", False, "denied"),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", False, "denied"),
    ("192.31.196.0/24", "AS112-v4", True, "denied"),
    ("192.52.193.0/24", "AMT", True, "denied"),
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", None, "denied"),
    ("192.88.99.2/32", "6a44-relay anycast address", False, "denied"),
    ("192.168.0.0/16", "Private-Use", False, "denied"),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", True, "denied"),
    ("198.18.0.0/15", "Benchmarking", False, "denied"),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", False, "denied"),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", False, "denied"),
    ("240.0.0.0/4", "Reserved", False, "denied"),
    ("255.255.255.255/32", "Limited Broadcast", False, "denied"),
    ("::1/128", "Loopback Address", False, "denied"),
    ("::/128", "Unspecified Address", False, "denied"),
    ("::ffff:0:0/96", "IPv4-mapped Address", False, "embedded"),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", True, "embedded"),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", False, "denied"),
    ("100::/64", "Discard-Only Address Block", False, "denied"),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", False, "denied"),
    ("2001::/23", "IETF Protocol Assignments", False, "denied"),
    ("2001::/32", "TEREDO", None, "denied"),
    ("2001:1::1/128", "Port Control Protocol Anycast", True, "denied"),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", True, "denied"),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", True, "denied"),
    ("2001:2::/48", "Benchmarking", False, "denied"),
    ("2001:3::/32", "AMT", True, "denied"),
    ("2001:4:112::/48", "AS112-v6", True, "denied"),
    ("2001:10::/28", "Deprecated (previously ORCHID)", None, "denied"),
    ("2001:20::/28", "ORCHIDv2", True, "denied"),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", True, "denied"),
    ("2001:db8::/32", "Documentation", False, "denied"),
    ("2002::/16", "6to4", None, "embedded"),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", True, "denied"),
    ("3fff::/20", "Documentation", False, "denied"),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", False, "denied"),
    ("fc00::/7", "Unique-Local", False, "denied"),
    ("fe80::/10", "Link-Local Unicast", False, "denied"),
]

#: Neither registry lists these, but they are not unicast destinations on the Internet.
OTHER_DENIED = [
    ("224.0.0.0/4", "IPv4 multicast (RFC 5771)"),
    ("ff00::/8", "IPv6 multicast (RFC 4291)"),
    ("fec0::/10", "deprecated site-local (RFC 3879)"),
]


class CanonicalPeerTests(SynchronousTestCase):
    """
    Tests for L{canonicalPeer}.
    """

    def test_plainAddresses(self) -> None:
        """
        Plain IPv4 and IPv6 literals parse to themselves.
        """
        self.assertEqual(canonicalPeer("8.8.8.8"), IPv4Address("8.8.8.8"))
        self.assertEqual(canonicalPeer("2001:db8::1"), IPv6Address("2001:db8::1"))

    def test_embeddingFormsMapToIPv4(self) -> None:
        """
        IPv4-mapped, IPv4-translated, IPv4-compatible, 6to4 and NAT64 well-known prefix
        addresses map to the IPv4 address they carry.
        """
        for host in [
            "::ffff:127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "2002:7f00:1:abcd::99",
            "64:ff9b::7f00:1",
        ]:
            self.assertEqual(canonicalPeer(host), IPv4Address("127.0.0.1"), host)

    def test_unspecifiedAndLoopbackStayIPv6(self) -> None:
        """
        C{::} and C{::1} lie in the IPv4-compatible block but are not IPv4 addresses.
        """
        self.assertEqual(canonicalPeer("::"), IPv6Address("::"))
        self.assertEqual(canonicalPeer("::1"), IPv6Address("::1"))
        self.assertEqual(canonicalPeer("::2"), IPv4Address("0.0.0.2"))

    def test_scopeIdDropped(self) -> None:
        """
        A scope id is accepted and dropped.
        """
        self.assertEqual(canonicalPeer("fe80::1%eth0"), IPv6Address("fe80::1"))

    def test_invalid(self) -> None:
        """
        Anything but an address literal raises L{ValueError} naming it.
        """
        for host in ["", "example.com", "1.2.3", "010.0.0.1", "::ffff:1.2.3.4.5", "1.2.3.4:80"]:
            error = self.assertRaises(ValueError, canonicalPeer, host)
            self.assertIn(repr(host), str(error))
        self.assertRaises(ValueError, canonicalPeer, 2130706433)


class ParseAddressRangeTests(SynchronousTestCase):
    """
    Tests for L{parseAddressRange} and L{AddressRange}.
    """

    def test_singleAddress(self) -> None:
        """
        A single address is a range of one.
        """
        r = parseAddressRange("192.0.2.5")
        self.assertEqual(r, AddressRange(IPv4Address("192.0.2.5"), IPv4Address("192.0.2.5")))
        self.assertIn(IPv4Address("192.0.2.5"), r)
        self.assertNotIn(IPv4Address("192.0.2.6"), r)

    def test_lowHigh(self) -> None:
        """
        coturn's C{low-high} is an inclusive range; spaces around the ends are allowed.
        """
        r = parseAddressRange("10.0.0.1 - 10.0.0.9")
        self.assertEqual((r.low, r.high), (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.9")))
        self.assertIn(IPv4Address("10.0.0.9"), r)
        self.assertNotIn(IPv4Address("10.0.0.10"), r)
        self.assertNotIn(IPv4Address("10.0.0.0"), r)

    def test_cidr(self) -> None:
        """
        CIDR covers the network's first to last address.
        """
        r = parseAddressRange("2001:db8::/32")
        self.assertEqual(r.low, IPv6Address("2001:db8::"))
        self.assertEqual(r.high, IPv6Address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))

    def test_embeddedFormsCanonicalised(self) -> None:
        """
        Addresses in a range are canonicalised like peers, so a range written in an
        IPv4-embedding form matches the IPv4 peers it means.
        """
        self.assertEqual(parseAddressRange("::ffff:10.0.0.1"), parseAddressRange("10.0.0.1"))
        self.assertEqual(
            parseAddressRange("::ffff:10.0.0.0/104"), parseAddressRange("10.0.0.0/8")
        )

    def test_ipv6SpellingOfAllIPv4Refused(self) -> None:
        """
        An IPv6 range that embeds every IPv4 address (a NAT64 or mapped prefix) is refused:
        allowed, it would make loopback and private IPv4 peers reachable.
        """
        for text in (
            "64:ff9b::/96", "::ffff:0:0/96", "2002::/16", "::ffff:0.0.0.0-::ffff:255.255.255.255"
        ):
            error = self.assertRaises(ValueError, parseAddressRange, text)
            self.assertIn("embeds every IPv4 address", str(error))
        self.assertRaises(ValueError, PeerPolicy, allowed=["64:ff9b::/96"])
        self.assertEqual(parseAddressRange("0.0.0.0/0").high, IPv4Address("255.255.255.255"))

    def test_familiesDoNotMix(self) -> None:
        """
        An address of one family is never in a range of the other.
        """
        self.assertNotIn(IPv6Address("::a00:1"), parseAddressRange("0.0.0.0/0"))
        self.assertNotIn(IPv4Address("0.0.0.1"), parseAddressRange("::/0"))
        self.assertNotIn("10.0.0.1", parseAddressRange("0.0.0.0/0"))

    def test_errors(self) -> None:
        """
        Malformed text, host bits in CIDR, a reversed range and a range across families (also
        one that only becomes IPv4 at one end once canonicalised, such as C{::/96}) raise
        L{ValueError} quoting the text.
        """
        for text in [
            "",
            "nonsense",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-::1",
            "10.0.0.1-",
            "10.0.0.1-10.0.0.2-10.0.0.3",
            "::/96",
            "::1-::ffff:1.2.3.4",
        ]:
            error = self.assertRaises(ValueError, parseAddressRange, text)
            self.assertIn(repr(text), str(error))

    def test_directConstructionValidated(self) -> None:
        """
        L{AddressRange} itself refuses mixed families and reversed ends.
        """
        self.assertRaises(ValueError, AddressRange, IPv4Address("1.0.0.0"), IPv6Address("::1"))
        self.assertRaises(ValueError, AddressRange, IPv4Address("2.0.0.0"), IPv4Address("1.0.0.0"))


class PeerPolicyTests(SynchronousTestCase):
    """
    Tests for L{PeerPolicy}.
    """

    def test_defaultRangesDenied(self) -> None:
        """
        An address inside each default range is denied, and the address just outside it is
        allowed.
        """
        policy = PeerPolicy()
        for network, inside, outside in DEFAULT_DENIED:
            self.assertIn(canonicalPeer(inside), parseAddressRange(network), network)
            self.assertFalse(policy.isAllowed(inside), inside)
            first, last = ip_network(network)[0], ip_network(network)[-1]
            self.assertFalse(policy.isAllowed(str(first)), first)
            self.assertFalse(policy.isAllowed(str(last)), last)
            if outside is not None:
                self.assertTrue(policy.isAllowed(outside), outside)

    def test_specialPurposeRegistriesDenied(self) -> None:
        """
        Every row of IANA's special-purpose registries that is not globally reachable is
        denied at its first, middle and last address, and so are the rows kept denied by
        decision (anycast infrastructure, identifiers that are not locators) and multicast;
        the rows of IPv6 forms carrying an IPv4 address take the answer of the IPv4 address
        they carry.
        """
        policy = PeerPolicy()
        for block, name, reachable, treatment in IANA_SPECIAL_PURPOSE:
            network = ip_network(block)
            if treatment == "embedded":
                self.assertTrue(policy.isAllowed(str(self._embed(network, "8.8.8.8"))), name)
                self.assertFalse(policy.isAllowed(str(self._embed(network, "10.0.0.1"))), name)
                continue
            for address in (
                network[0], network[network.num_addresses // 2], network[-1]
            ):
                self.assertFalse(policy.isAllowed(str(address)), (block, name, address))
        for block, name in OTHER_DENIED:
            network = ip_network(block)
            for address in (network[0], network[-1]):
                self.assertFalse(policy.isAllowed(str(address)), (block, name))

    @staticmethod
    def _embed(network, ipv4: str) -> IPv6Address:
        value = int(IPv4Address(ipv4))
        if network.prefixlen == 16:
            return IPv6Address(int(network.network_address) | value << 80)
        return IPv6Address(int(network.network_address) | value)

    def test_globalUnicastAllowed(self) -> None:
        """
        Outside the special-purpose rows, the ends of IPv6 global unicast and of the ranges
        around the denied 2001::/23 are allowed.
        """
        policy = PeerPolicy()
        for host in ["2000::", "2001:200::", "2001:dff:ffff::1", "2a00:1450::1", "2620:4f::1"]:
            self.assertTrue(policy.isAllowed(host), host)

    def test_publicAllowed(self) -> None:
        """
        Ordinary public unicast addresses of both families are allowed.
        """
        policy = PeerPolicy()
        for host in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2a00:1450::1", "2606:4700::1"]:
            self.assertTrue(policy.isAllowed(host), host)

    def test_embeddedDeniedIPv4Denied(self) -> None:
        """
        Each IPv6 form of a denied IPv4 address is denied.
        """
        policy = PeerPolicy()
        for host in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "::ffff:0:a00:1",
            "2002:c0a8:101::1",
            "::ffff:169.254.169.254",
        ]:
            self.assertFalse(policy.isAllowed(host), host)

    def test_embeddedPublicIPv4Allowed(self) -> None:
        """
        Each IPv6 form of a public IPv4 address is allowed like the IPv4 address.
        """
        policy = PeerPolicy()
        for host in ["::ffff:8.8.8.8", "::8.8.8.8", "2002:808:808::", "64:ff9b::808:808"]:
            self.assertTrue(policy.isAllowed(host), host)

    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def test_mappedFormAgrees(self, value: int) -> None:
        """
        For any IPv4 address, the IPv4-mapped, NAT64 and 6to4 forms get the same answer as the
        address itself.
        """
        policy = PeerPolicy()
        address = IPv4Address(value)
        expected = policy.isAllowed(str(address))
        self.assertEqual(policy.isAllowed(f"::ffff:{address}"), expected)
        self.assertEqual(policy.isAllowed(str(IPv6Address((0x64FF9B << 96) | value))), expected)
        sixToFour = IPv6Address((0x2002 << 112) | value << 80)
        self.assertEqual(policy.isAllowed(str(sixToFour)), expected)

    def test_allowLoopback(self) -> None:
        """
        C{allowLoopback} re-allows 127.0.0.0/8 and ::1, in every form, and nothing else.
        """
        policy = PeerPolicy(allowLoopback=True)
        for host in ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"]:
            self.assertTrue(policy.isAllowed(host), host)
        for host in ["10.0.0.1", "::", "0.0.0.0"]:
            self.assertFalse(policy.isAllowed(host), host)

    def test_multicastDeniedWhateverNoMulticast(self) -> None:
        """
        Multicast is denied with C{noMulticast} true or false; C{allowed} can re-allow it.
        """
        for noMulticast in (True, False):
            policy = PeerPolicy(noMulticast=noMulticast)
            self.assertFalse(policy.isAllowed("239.1.2.3"))
            self.assertFalse(policy.isAllowed("ff05::2"))
        self.assertTrue(PeerPolicy(allowed=["239.1.2.3"]).isAllowed("239.1.2.3"))

    def test_allowedWinsOverDeny(self) -> None:
        """
        An allowed single address or range wins over the default list and over C{denied},
        and allows nothing beyond itself.
        """
        policy = PeerPolicy(
            allowed=["10.1.2.3", "192.168.10.0-192.168.10.255", "fd00::/64"],
            denied=["10.1.2.0/24"],
        )
        for host in ["10.1.2.3", "192.168.10.0", "192.168.10.255", "fd00::5", "::ffff:10.1.2.3"]:
            self.assertTrue(policy.isAllowed(host), host)
        for host in ["10.1.2.4", "192.168.11.0", "fd00:0:0:1::5"]:
            self.assertFalse(policy.isAllowed(host), host)

    def test_deniedAdds(self) -> None:
        """
        C{denied} ranges are refused on top of the defaults, in their IPv6 forms too.
        """
        policy = PeerPolicy(denied=["8.8.8.0/24", "1.1.1.1-1.1.1.2", "2001:4860::/32"])
        for host in ["8.8.8.8", "::ffff:8.8.8.8", "1.1.1.2", "2001:4860:4860::8888"]:
            self.assertFalse(policy.isAllowed(host), host)
        for host in ["8.8.9.1", "1.1.1.3", "2001:4861::1"]:
            self.assertTrue(policy.isAllowed(host), host)
        self.assertFalse(policy.isAllowed("10.0.0.1"))

    def test_relayAddressesReachable(self) -> None:
        """
        The server's non-loopback relay addresses are reachable (for a permission) even inside
        a denied range; their neighbours are not.
        """
        policy = PeerPolicy(relayAddresses=["10.0.0.5", "fd00::5"], denied=["10.0.0.5"])
        for host in ["10.0.0.5", "fd00::5", "fd00:0::5"]:
            self.assertTrue(policy.isAllowed(host), host)
        for host in ["10.0.0.6", "fd00::6"]:
            self.assertFalse(policy.isAllowed(host), host)

    def test_loopbackRelayAddressNotExempt(self) -> None:
        """
        A loopback relay address is refused like any loopback peer, with or without a port,
        in every spelling, and so is a loopback listening address; with C{allowLoopback} it is
        an ordinary peer on every port, but its IPv6 spellings stay refused.
        """
        open_ = {("127.0.0.1", 49152), ("::1", 49153)}
        policy = PeerPolicy(
            relayAddresses=["127.0.0.1", "::1"], ownAddresses=["127.0.0.1"],
            relayPortOpen=lambda h, p: (h, p) in open_,
        )
        for host in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.2"]:
            for port in (None, 49152, 49153, 3478):
                self.assertFalse(policy.isAllowed(host, port), (host, port))
            self.assertFalse(policy.isPortRestricted(host), host)
        opened = PeerPolicy(allowLoopback=True, relayAddresses=["127.0.0.1", "::1"])
        self.assertTrue(opened.isAllowed("127.0.0.1", 22))
        self.assertTrue(opened.isAllowed("::1", 22))
        self.assertFalse(opened.isPortRestricted("127.0.0.1"))
        for host in ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "::127.0.0.1"]:
            self.assertFalse(opened.isAllowed(host, 49152), host)

    def test_relayAddressesOnlyOnOpenRelayPorts(self) -> None:
        """
        With a port, a relay address is reachable only where the server holds a relay socket,
        so a client cannot reach the relay host's other services, even ones whose port lies in
        the relay range; its permission (no port) is allowed, and it is marked port-restricted
        unless the operator allows it anyway.
        """
        open_ = {("10.0.0.5", 49152), ("10.0.0.5", 49200)}
        policy = PeerPolicy(
            relayAddresses=["10.0.0.5"], relayPortOpen=lambda h, p: (h, p) in open_
        )
        self.assertTrue(policy.isAllowed("10.0.0.5"))
        self.assertTrue(policy.isAllowed("10.0.0.5", 49152))
        self.assertTrue(policy.isAllowed("10.0.0.5", 49200))
        self.assertFalse(policy.isAllowed("10.0.0.5", 22))
        self.assertFalse(policy.isAllowed("10.0.0.5", 49153))
        self.assertTrue(policy.isPortRestricted("10.0.0.5"))
        self.assertFalse(policy.isPortRestricted("8.8.8.8"))
        self.assertFalse(policy.isPortRestricted("not an address"))
        covered = PeerPolicy(
            allowed=["10.0.0.0/8"], relayAddresses=["10.0.0.5"],
            relayPortOpen=lambda h, p: (h, p) in open_,
        )
        self.assertFalse(covered.isAllowed("10.0.0.5", 22))
        self.assertFalse(covered.isAllowed("10.0.0.5", 22, tcp=True))
        self.assertTrue(covered.isPortRestricted("10.0.0.5"))
        self.assertTrue(covered.isAllowed("10.0.0.6", 22))
        opened = PeerPolicy(allowed=["10.0.0.5"], relayAddresses=["10.0.0.5"])
        self.assertTrue(opened.isAllowed("10.0.0.5", 22))
        self.assertFalse(opened.isPortRestricted("10.0.0.5"))

    def test_localAddressesRefused(self) -> None:
        """
        Any address of the host (C{isLocal}), a secondary one or one in a locally routed
        range, is refused in every spelling and on every port, even inside an allowed range;
        a single allowed address lifts that; with C{allowLoopback} loopback addresses are
        peers, their IPv6 spellings not.
        """
        local = {"93.184.215.14", "10.9.9.9", "2606:4700::99", "127.0.0.1", "127.0.0.2", "::1"}
        policy = PeerPolicy(
            allowed=["10.0.0.0/8"], isLocal=lambda host: host in local,
            relayAddresses=["10.0.0.5"],
        )
        for host in ["93.184.215.14", "10.9.9.9", "2606:4700::99", "64:ff9b::5db8:d70e",
                     "::ffff:10.9.9.9", "2002:a09:909::1", "127.0.0.2", "::1"]:
            self.assertFalse(policy.isAllowed(host), host)
            self.assertFalse(policy.isAllowed(host, 5000), host)
        self.assertTrue(policy.isAllowed("10.9.9.8"))
        self.assertTrue(policy.isAllowed("93.184.215.15"))
        self.assertTrue(PeerPolicy(
            allowed=["93.184.215.14"], isLocal=lambda host: host in local
        ).isAllowed("93.184.215.14", 8088))
        loopback = PeerPolicy(allowLoopback=True, isLocal=lambda host: host in local)
        self.assertTrue(loopback.isAllowed("127.0.0.2", 22))
        self.assertTrue(loopback.isAllowed("::1", 22))
        for host in ["::ffff:127.0.0.2", "64:ff9b::7f00:2", "::ffff:127.0.0.1"]:
            self.assertFalse(loopback.isAllowed(host, 22), host)

    def test_unspecifiedNeverOpened(self) -> None:
        """
        The unspecified addresses reach the local host: refused even inside allowed ranges
        that cover all of IPv4 and IPv6, in every spelling.
        """
        policy = PeerPolicy(allowed=["0.0.0.0/0", "::/0"])
        for host in ["0.0.0.0", "::", "::ffff:0.0.0.0", "0.0.0.0%x"]:
            self.assertFalse(policy.isAllowed(host, 3478), host)
        self.assertTrue(policy.isAllowed("10.0.0.1", 3478))

    def test_failingHostProbeRefuses(self) -> None:
        """
        When C{isLocal} fails, the address is refused rather than allowed.
        """
        def broken(host: str) -> bool:
            raise OSError(24, "Too many open files")

        self.assertFalse(PeerPolicy(isLocal=broken).isAllowed("8.8.8.8", 1))

    def test_allowedRangeDoesNotOpenOwnAddresses(self) -> None:
        """
        An allowed range that merely covers the server's own addresses (an internal /8 for
        media servers) keeps them closed: the listening address, the IPv6 spellings of the
        relay address, the relay address's other ports.
        """
        policy = PeerPolicy(
            allowed=["10.0.0.0/8"], relayAddresses=("10.0.0.5",), ownAddresses=("10.0.0.6",),
            relayPortOpen=lambda h, p: (h, p) == ("10.0.0.5", 50000),
        )
        self.assertFalse(policy.isAllowed("10.0.0.6", 3478))
        self.assertFalse(policy.isAllowed("64:ff9b::a00:5", 50000))
        self.assertFalse(policy.isAllowed("10.0.0.5", 3478))
        self.assertTrue(policy.isAllowed("10.0.0.5", 50000))
        self.assertTrue(policy.isAllowed("10.0.0.7", 3478))

    def test_sixToFourRelayAddressAsWritten(self) -> None:
        """
        An IPv6 relay address in 6to4 form and the IPv4 relay address it carries are two
        relay addresses, each reachable on its own relay ports only.
        """
        open_ = {("93.184.215.14", 50020), ("2002:5db8:d70e::1", 50010)}
        policy = PeerPolicy(
            relayAddresses=["93.184.215.14", "2002:5db8:d70e::1"],
            relayPortOpen=lambda h, p: (h, p) in open_,
        )
        self.assertTrue(policy.isAllowed("93.184.215.14", 50020))
        self.assertFalse(policy.isAllowed("93.184.215.14", 50010))
        self.assertTrue(policy.isAllowed("2002:5db8:d70e::1", 50010))
        self.assertFalse(policy.isAllowed("2002:5db8:d70e::1", 50020))
        self.assertFalse(policy.isAllowed("2002:5db8:d70e::2", 50010))
        self.assertFalse(policy.isAllowed("64:ff9b::5db8:d70e", 50020))
        denied = PeerPolicy(
            relayAddresses=["10.0.0.5", "2002:cb00:7107::1"],
            relayPortOpen=lambda h, p: (h, p) in {("2002:cb00:7107::1", 50010)},
        )
        self.assertFalse(denied.isAllowed("203.0.113.7"))
        self.assertFalse(denied.isAllowed("203.0.113.7", 50010))

    def test_ipv6SpellingsOfOwnAddressesRefused(self) -> None:
        """
        Every IPv6 form carrying one of the server's own IPv4 addresses (relay, announced or
        listening) is refused, with or without a port, even the port of an open relay socket
        and even when the address is public: the relay would send to the IPv6 address, and a
        NAT64, SIIT or 6to4 translator (or the kernel, for the mapped form) would deliver it to
        the server.  None of them is port-restricted, since none is ever permitted.
        """
        open_ = {("8.8.8.8", 50000)}
        policy = PeerPolicy(
            relayAddresses={"8.8.8.8": "8.8.8.8", "9.9.9.9": "8.8.8.8"},
            ownAddresses=["1.1.1.1"],
            relayPortOpen=lambda h, p: (h, p) in open_,
        )
        for ipv4 in ["8.8.8.8", "9.9.9.9", "1.1.1.1"]:
            value = int(IPv4Address(ipv4))
            for form in [
                f"::ffff:{ipv4}", f"::ffff:0:{ipv4}", f"::{ipv4}",
                str(IPv6Address((0x64FF9B << 96) | value)),
                str(IPv6Address((0x2002 << 112) | value << 80 | 1)),
            ]:
                for port in (None, 50000, 3478):
                    self.assertFalse(policy.isAllowed(form, port), (form, port))
                self.assertFalse(policy.isPortRestricted(form), form)
        self.assertTrue(policy.isAllowed("8.8.8.8", 50000))
        self.assertTrue(policy.isAllowed("9.9.9.9", 50000))
        self.assertFalse(policy.isAllowed("1.1.1.1"))
        self.assertFalse(policy.isAllowed("1.1.1.1", 50000))
        self.assertTrue(policy.isAllowed("64:ff9b::1.1.1.2", 50000))

    def test_ownAddressesUnreachable(self) -> None:
        """
        The server's own addresses that are not relay addresses (a listening address) are
        refused on every port unless an allowed range names them.
        """
        policy = PeerPolicy(ownAddresses=["8.8.4.4", "2606:4700::10"])
        for host in ["8.8.4.4", "2606:4700::10", "::ffff:8.8.4.4"]:
            self.assertFalse(policy.isAllowed(host), host)
            self.assertFalse(policy.isAllowed(host, 3478), host)
        self.assertTrue(PeerPolicy(allowed=["8.8.4.4"], ownAddresses=["8.8.4.4"]).isAllowed(
            "8.8.4.4", 3478
        ))

    def test_deniedWinsOverAllowLoopback(self) -> None:
        """
        A C{denied} range covering loopback addresses holds with C{allowLoopback}.
        """
        policy = PeerPolicy(allowLoopback=True, denied=["127.0.0.5"])
        self.assertFalse(policy.isAllowed("127.0.0.5"))
        self.assertTrue(policy.isAllowed("127.0.0.6"))

    def test_externalAddressMapsToRelay(self) -> None:
        """
        An announced (--external-ip) address is checked against the relay sockets of the
        relay address it maps to.
        """
        policy = PeerPolicy(
            relayAddresses={"10.0.0.5": "10.0.0.5", "192.168.7.7": "10.0.0.5"},
            relayPortOpen=lambda h, p: (h, p) == ("10.0.0.5", 50000),
        )
        self.assertTrue(policy.isAllowed("192.168.7.7", 50000))
        self.assertFalse(policy.isAllowed("192.168.7.7", 50001))
        self.assertFalse(policy.isAllowed("192.168.7.8", 50000))

    def test_dualStackRelayAddresses(self) -> None:
        """
        With a relay address of each family, each is reachable only on the ports of its own
        relay sockets (an IPv6 address outside every denied range included); the IPv6
        spellings of the IPv4 one are refused; the neighbours of the IPv6 one are ordinary
        peers.
        """
        open_ = {("203.0.113.10", 50000), ("2606:4700::10", 50001)}
        policy = PeerPolicy(
            relayAddresses=["203.0.113.10", "2606:4700::10"],
            relayPortOpen=lambda h, p: (h, p) in open_,
        )
        self.assertTrue(policy.isAllowed("2606:4700::10"))
        self.assertTrue(policy.isAllowed("2606:4700::10", 50001))
        self.assertTrue(policy.isAllowed("2606:4700:0:0::10", 50001))
        self.assertFalse(policy.isAllowed("2606:4700::10", 50000))
        self.assertFalse(policy.isAllowed("2606:4700::10", 22))
        self.assertTrue(policy.isPortRestricted("2606:4700::10"))
        self.assertTrue(policy.isAllowed("203.0.113.10", 50000))
        self.assertFalse(policy.isAllowed("::ffff:203.0.113.10", 50000))
        self.assertFalse(policy.isAllowed("64:ff9b::cb00:710a", 50000))
        self.assertTrue(policy.isAllowed("2606:4700::11", 22))
        self.assertFalse(policy.isPortRestricted("2606:4700::11"))

    def test_externalIPv6MapsToIPv6Relay(self) -> None:
        """
        An announced IPv6 address (--external-ip for the IPv6 relay) is checked against the
        IPv6 relay address's sockets.
        """
        policy = PeerPolicy(
            relayAddresses={
                "203.0.113.10": "203.0.113.10", "2001:db8::10": "2001:db8::10",
                "2606:4700::10": "2001:db8::10",
            },
            relayPortOpen=lambda h, p: (h, p) == ("2001:db8::10", 50001),
        )
        self.assertTrue(policy.isAllowed("2606:4700::10", 50001))
        self.assertFalse(policy.isAllowed("2606:4700::10", 50000))
        self.assertTrue(policy.isPortRestricted("2606:4700::10"))

    def test_unspecifiedRelayAddressIgnored(self) -> None:
        """
        A wildcard relay address does not make the unspecified address reachable (sending to it
        reaches the local host).
        """
        policy = PeerPolicy(relayAddresses=["0.0.0.0", "::"])
        self.assertFalse(policy.isAllowed("0.0.0.0"))
        self.assertFalse(policy.isAllowed("::"))

    def test_garbageHostDenied(self) -> None:
        """
        A host that is not an address literal is refused rather than raising.
        """
        policy = PeerPolicy(allowed=["0.0.0.0/0"])
        for host in ["", "localhost", "999.1.1.1", "::ffff:zz", None, b"\x7f\x00\x00\x01"]:
            self.assertFalse(policy.isAllowed(host), host)  # type: ignore[arg-type]

    def test_badConfigurationRaises(self) -> None:
        """
        An allowed or denied range or relay address that does not parse raises L{ValueError}.
        """
        self.assertRaises(ValueError, PeerPolicy, allowed=["10.0.0.0/33"])
        self.assertRaises(ValueError, PeerPolicy, denied=["nope"])
        self.assertRaises(ValueError, PeerPolicy, relayAddresses=["relay.example"])
