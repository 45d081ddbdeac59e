# -*- test-case-name: tests.test_policy -*-
"""
Which peer addresses a client may reach through the relay.

A TURN server relays to whatever address a client names, so without a policy it is an open
proxy into the networks it sits on. L{PeerPolicy} denies loopback, private, link-local,
documentation, multicast and other special-purpose ranges by default, after mapping IPv6 forms
that embed an IPv4 address back to that IPv4 address (L{canonicalPeer}). See
C{docs/security.md}.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = ["AddressRange", "PeerPolicy", "canonicalPeer", "parseAddressRange"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# IPv6 prefixes whose addresses carry an IPv4 address: (prefix length, prefix value, how far the
# IPv4 address is shifted from the low end).
_IPV4_EMBEDDINGS = (
    (96, 0xFFFF, 0),  # IPv4-mapped ::ffff:a.b.c.d (RFC 4291)
    (96, 0xFFFF0000, 0),  # IPv4-translated ::ffff:0:a.b.c.d (RFC 2765 SIIT)
    (96, 0x0064FF9B << 64, 0),  # NAT64 well-known prefix 64:ff9b::/96 (RFC 6052)
    (16, 0x2002, 80),  # 6to4 2002:AABB:CCDD::/48 (RFC 3056)
)


def _canonical(address: IPAddress) -> IPAddress:
    if address.version == 4:
        return address
    value = int(address)
    for length, prefix, shift in _IPV4_EMBEDDINGS:
        if value >> (128 - length) == prefix:
            return ipaddress.IPv4Address((value >> shift) & 0xFFFFFFFF)
    if value >> 32 == 0 and value > 1:
        # IPv4-compatible ::a.b.c.d (deprecated by RFC 4291): all of ::/96 but :: and ::1.
        return ipaddress.IPv4Address(value)
    # Drop a scope id (fe80::1%eth0): policy is about the address alone.
    return ipaddress.IPv6Address(value)


def canonicalPeer(host: str) -> IPAddress:
    """
    Parse a peer address, mapping the IPv6 forms that embed an IPv4 address (IPv4-mapped,
    IPv4-translated, IPv4-compatible, 6to4, NAT64 C{64:ff9b::/96}) to that IPv4 address and
    dropping any scope id.

    @raise ValueError: C{host} is not an IPv4 or IPv6 address literal.
    """
    if not isinstance(host, str):
        raise ValueError(f"not an IP address: {host!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None
    return _canonical(address)


@dataclass(frozen=True)
class AddressRange:
    """
    An inclusive range of addresses of one family.

    @raise ValueError: the ends are of different families, or C{low} is above C{high}.
    """

    low: IPAddress
    high: IPAddress

    def __post_init__(self) -> None:
        if self.low.version != self.high.version:
            raise ValueError(f"range {self.low}-{self.high} mixes IPv4 and IPv6")
        if self.low > self.high:
            raise ValueError(f"range {self.low}-{self.high} ends before it starts")

    def __contains__(self, address: object) -> bool:
        return (
            isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address))
            and address.version == self.low.version
            and int(self.low) <= int(address) <= int(self.high)
        )


def parseAddressRange(text: str) -> AddressRange:
    """
    Parse an address range as the peer options take it: a single address, coturn's
    C{low-high}, or CIDR (C{10.0.0.0/8}, host bits clear). Every address is canonicalised like a
    peer (L{canonicalPeer}), so C{::ffff:10.0.0.1} means C{10.0.0.1} and
    C{::ffff:10.0.0.0/104} means C{10.0.0.0/8}.

    @raise ValueError: the text is none of these, a range ends before it starts or spans IPv4
        and IPv6, or an IPv6 spelling covers all of IPv4 (C{64:ff9b::/96}, C{::ffff:0:0/96}:
        allowing a NAT64 prefix that way would allow every IPv4 peer, loopback included);
        the message quotes the text.
    """
    try:
        if "/" in text:
            network = ipaddress.ip_network(text.strip())
            result = AddressRange(
                _canonical(network.network_address), _canonical(network.broadcast_address)
            )
            written = network.version
        else:
            low, separator, high = text.partition("-")
            lowAddress = canonicalPeer(low.strip())
            result = AddressRange(
                lowAddress, canonicalPeer(high.strip()) if separator else lowAddress
            )
            written = 6 if ":" in text else 4
    except ValueError as e:
        raise ValueError(f"invalid address range {text!r}: {e}") from None
    if written == 6 and result == _ALL_IPV4:
        raise ValueError(
            f"address range {text!r} embeds every IPv4 address; write 0.0.0.0/0 if that is "
            f"what you mean"
        )
    return result


_ALL_IPV4 = AddressRange(ipaddress.IPv4Address(0), ipaddress.IPv4Address(2**32 - 1))

# Every range IANA's special-purpose registries mark as not globally reachable, plus the
# anycast infrastructure they mark reachable but that answers at the nearest instance (often
# inside the operator's own network); docs/security.md gives the registry row of each.
# IPv6 forms that embed an IPv4 address never meet these ranges: they are judged as the IPv4
# address they carry (L{canonicalPeer}).
_DEFAULT_DENIED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    # The special IPv6 ranges outside global unicast, named so that a refusal can say which
    # (the broad ranges below cover them too), then all of IPv6 outside 2000::/3.
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "100:0:0:1::/64",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "::/3",
    "4000::/2",
    "8000::/1",
    "2001::/23",
    "2001:db8::/32",
    "2620:4f:8000::/48",
    "3fff::/20",
)


#: Why L{PeerPolicy.refusal} refuses a peer.
REFUSED_NOT_AN_ADDRESS = "not an address"
REFUSED_RELAY_PORT = "the server's own relay address, on a port where it holds no relay socket"
REFUSED_OWN_SPELLING = "an IPv6 spelling of an address of the server or its host"
REFUSED_OWN = "an address of the server or its host"
REFUSED_LOOPBACK = "loopback (allowed only with --allow-loopback-peers)"
REFUSED_DENIED = "denied by --denied-peer-ip"
REFUSED_DEFAULT = "in the default deny list"


class _RangeSet:
    """
    A union of address ranges, merged per family into sorted disjoint integer intervals, so a
    lookup is one bisection whatever the number of ranges.
    """

    def __init__(self, ranges: Iterable[AddressRange]) -> None:
        intervals: Dict[int, List[Tuple[int, int]]] = {4: [], 6: []}
        for r in ranges:
            intervals[r.low.version].append((int(r.low), int(r.high)))
        self._starts: Dict[int, List[int]] = {}
        self._ends: Dict[int, List[int]] = {}
        for version, pairs in intervals.items():
            starts: List[int] = []
            ends: List[int] = []
            for low, high in sorted(pairs):
                if ends and low <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], high)
                else:
                    starts.append(low)
                    ends.append(high)
            self._starts[version] = starts
            self._ends[version] = ends

    def __contains__(self, address: IPAddress) -> bool:
        value = int(address)
        index = bisect_right(self._starts[address.version], value) - 1
        return index >= 0 and value <= self._ends[address.version][index]


class PeerPolicy:
    """
    Decide whether a client may reach a peer address.

    What is judged is what the relay sends to: the address as the client wrote it, which the
    data path writes to unchanged, and, for the IPv6 forms that carry an IPv4 address (which
    a translator, a 6to4 relay or the kernel itself turns into that IPv4 address), the IPv4
    address it carries.  The order:

      1. the address is parsed (an unparseable one is refused) and canonicalised
         (L{canonicalPeer});
      2. an C{allowed} entry that is this single address wins over everything below;
      3. one of the server's own non-loopback relay addresses, written as itself, is
         reachable on the ports of its open relay sockets only (relay-to-relay), whatever
         range it is in;
      4. an IPv6 form carrying one of the server's own or local addresses is refused;
      5. any other address of the server or of its host is refused, loopback ones included
         unless C{allowLoopback};
      6. an C{allowed} range allows; the C{denied} ranges refuse; loopback is allowed with
         C{allowLoopback}; the default deny list refuses; anything else is allowed.
    """

    def __init__(
        self,
        allowLoopback: bool = False,
        noMulticast: bool = True,
        allowed: Iterable[str] = (),
        denied: Iterable[str] = (),
        relayAddresses: Union[Iterable[str], Mapping[str, str]] = (),
        relayPortOpen: Callable[[str, int], bool] = lambda host, port: False,
        tcpRelayPortOpen: Callable[[str, int], bool] = lambda host, port: False,
        ownAddresses: Iterable[str] = (),
        isLocal: Callable[[str], bool] = lambda host: False,
    ) -> None:
        """
        @param allowLoopback: do not deny C{127.0.0.0/8} and C{::1} (coturn's
            C{--allow-loopback-peers}); for tests and single-host setups.
        @param noMulticast: accepted for coturn's C{--no-multicast-peers}; multicast is denied
            by default here whatever its value (re-allow ranges with C{allowed}).
        @param allowed: ranges (L{parseAddressRange} syntax) that are reachable even when
            denied; one that is a single address also lifts the rules for the server's own
            addresses (a media server on the TURN host).
        @param denied: ranges denied in addition to the defaults (loopback included, with
            C{allowLoopback}).
        @param relayAddresses: the server's relay addresses, reachable even when denied but only
            on ports where C{relayPortOpen} says a relay socket is open; either the addresses,
            or a mapping of each address a client may use (relay or --external-ip address) to
            the relay address bound.  An unspecified address (C{0.0.0.0}, C{::}) is ignored
            since sending to it reaches the local host; a loopback one is the server's own
            address but reachable only as any loopback peer is.
        @param relayPortOpen: C{relayPortOpen(relayHost, port)}: does this server hold a UDP
            relay socket there?  Without it, relay addresses pass only for permissions.
        @param tcpRelayPortOpen: the same for the listening sockets of TCP relays (RFC 6062),
            asked for TCP connections only: a UDP relay port must not open the way to a TCP
            service on the same port, nor the other way round.
        @param ownAddresses: the server's other addresses (its listening addresses), refused
            as peers in every spelling.
        @param isLocal: C{isLocal(host)}: is this an address of the host the server runs on
            (L{twisted_turn.hostaddress.isLocalAddress})?  Such addresses are refused like
            C{ownAddresses}; asked once per judgement of an address that is not a relay
            address, never for the data path's relay-to-relay checks.
        @raise ValueError: a range, relay or own address does not parse.
        """
        if not isinstance(relayAddresses, Mapping):
            relayAddresses = {host: host for host in relayAddresses}
        relays = {_written(announced): bound for announced, bound in relayAddresses.items()}
        own = {
            *relays, *(canonicalPeer(host) for host in relayAddresses),
            *(canonicalPeer(host) for host in ownAddresses),
        }
        #: Every configured address of the server, as written and as judged.
        self._own = frozenset(own)
        #: Relay addresses written as themselves: reachable on open relay ports only.
        self._relays: Dict[IPAddress, str] = {
            address: bound
            for address, bound in relays.items()
            if not (address.is_unspecified or address.is_loopback)
        }
        self._allowLoopback = allowLoopback
        self._relayPortOpen = relayPortOpen
        self._tcpRelayPortOpen = tcpRelayPortOpen
        self._isLocal = isLocal
        allowedRanges = [parseAddressRange(text) for text in allowed]
        self._reachable = _RangeSet(allowedRanges)
        #: Single allowed addresses: the operator named them, so they pass every rule.
        self._pinned = frozenset(r.low for r in allowedRanges if r.low == r.high)
        self._deniedTexts = tuple(denied)
        self._denied = _RangeSet(parseAddressRange(text) for text in self._deniedTexts)
        self._defaultDenied = _RangeSet(parseAddressRange(text) for text in _DEFAULT_DENIED)

    def isAllowed(self, host: str, port: Optional[int] = None, tcp: bool = False) -> bool:
        """
        May a client create a permission for (C{port} L{None}), or bind a channel or send to
        (C{port} given), C{host}?  With C{tcp}, may a TCP relay connect to C{host} and C{port}
        (RFC 6062 Connect)?

        The server's own non-loopback relay address, written as itself, passes without a port
        (a permission is per IP) and with the port of an open relay socket, whatever ranges
        it is in; L{isPortRestricted} tells the data path which hosts need the port checked.

        @param host: the peer address literal, as the client gave it and as the relay will
            send to it.
        """
        return self.refusal(host, port, tcp) is None

    def refusal(
        self, host: str, port: Optional[int] = None, tcp: bool = False
    ) -> Optional[str]:
        """
        Why L{isAllowed} refuses C{host} (one of the C{REFUSED_*} reasons), or L{None} when it
        allows it; L{describeRefusal} says more for the log.
        """
        parsed = _parsePeer(host)
        if parsed is None:
            return REFUSED_NOT_AN_ADDRESS
        written, address = parsed
        if address in self._pinned:
            return None
        bound = self._relays.get(written)
        if bound is not None:
            # Whatever ranges it is in, the TURN host's own address reaches only its relay
            # sockets: not its listener (a relayed request would come from the server
            # itself) nor its other services (which may trust their own address).
            if port is None or (self._tcpRelayPortOpen if tcp else self._relayPortOpen)(
                bound, port
            ):
                return None
            return REFUSED_RELAY_PORT
        if written is not address:
            # An IPv6 spelling of an IPv4 address: the relay sends to the IPv6 address, and
            # whatever translates it delivers to the IPv4 one, which must not be ours.
            if self._isOwn(address):
                return REFUSED_OWN_SPELLING
        elif address.is_loopback and not self._allowLoopback:
            return REFUSED_LOOPBACK
        elif self._isOwn(address) and not (self._allowLoopback and address.is_loopback):
            return REFUSED_OWN
        if address in self._reachable:
            return None
        if address in self._denied:
            return REFUSED_DENIED
        if self._allowLoopback and address.is_loopback:
            return None
        if address in self._defaultDenied:
            return REFUSED_DEFAULT
        return None

    def describeRefusal(self, host: str, reason: str) -> str:
        """
        C{reason} (from L{refusal}) in words for the log, with the range that denied C{host}.
        """
        texts = {
            REFUSED_DENIED: self._deniedTexts, REFUSED_DEFAULT: _DEFAULT_DENIED,
        }.get(reason)
        parsed = _parsePeer(host)
        if texts and parsed is not None:
            address = parsed[1]
            for text in texts:
                if address in parseAddressRange(text):
                    return f"{reason} ({text})"
        return reason

    def _isOwn(self, address: IPAddress) -> bool:
        """
        Whether C{address} is the server's or its host's: configured, unspecified (sending
        there reaches the local host), or local by C{isLocal}; when C{isLocal} fails, it is
        taken for local, so the policy refuses rather than allows.
        """
        if address in self._own or address.is_unspecified:
            return True
        try:
            return bool(self._isLocal(str(address)))
        except Exception:
            return True

    def isPortRestricted(self, host: str) -> bool:
        """
        Whether sends to C{host} must pass L{isAllowed} with their port: true for the server's
        own relay addresses written as themselves (unless allowed by name), whose permission
        covers only the ports of open relay sockets.
        """
        parsed = _parsePeer(host)
        if parsed is None:
            return False
        written, address = parsed
        return written in self._relays and address not in self._pinned


def _written(host: str) -> IPAddress:
    """
    The address as written, without a scope id and without canonicalising.

    @raise ValueError: not an address literal.
    """
    parsed = _parsePeer(host)
    if parsed is None:
        raise ValueError(f"not an IP address: {host!r}")
    return parsed[0]


def _parsePeer(host: str) -> Optional[Tuple[IPAddress, IPAddress]]:
    """
    C{(written, canonical)}: the address as written (without a scope id) and the address the
    policy judges (L{canonicalPeer}); the same object unless C{host} is an IPv6 form carrying
    an IPv4 address.  L{None} when C{host} is not an address literal.
    """
    if not isinstance(host, str):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.scope_id is not None:
        address = ipaddress.IPv6Address(int(address))
    canonical = _canonical(address)
    return address, canonical if canonical.version != address.version else address
