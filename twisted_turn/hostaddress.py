# -*- test-case-name: tests.test_hostaddress -*-
"""
Whether an address belongs to this host, asked of the kernel at the moment of asking: the peer
policy (L{twisted_turn.policy}) refuses every local address but the relay addresses, so a
client cannot relay to the TURN host's own services through a secondary address, an address
added after start, or a whole range routed locally.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Union

__all__ = ["isLocalAddress"]

_NONLOCAL_BIND = {
    socket.AF_INET: "/proc/sys/net/ipv4/ip_nonlocal_bind",
    socket.AF_INET6: "/proc/sys/net/ipv6/ip_nonlocal_bind",
}


def _nonlocalBind(family: int) -> bool:
    """
    Whether this host lets a socket bind to any address (then binding proves nothing).
    """
    try:
        with open(_NONLOCAL_BIND[family]) as f:
            return f.read().strip() != "0"
    except OSError:
        return False


def _sourceFor(address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address], family: int):
    """
    The source address the kernel picks for a datagram to C{address}, or L{None} when it has
    no route: connecting a UDP socket sends nothing.
    """
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(address), 9))
            return ipaddress.ip_address(probe.getsockname()[0].partition("%")[0])
        except (OSError, ValueError):
            return None


def _bindable(address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address], family: int) -> bool:
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def isLocalAddress(host: str) -> bool:
    """
    Whether C{host} is an address of this host: one of any interface's (secondary ones
    included), or in a range routed locally (all of 127.0.0.0/8, anything added with
    C{ip route add local}).

    A socket can bind to exactly the local addresses, so a failed bind answers at once (the
    common case: an ordinary peer). Where C{ip_nonlocal_bind} lets any address be bound, the
    route answers instead: the kernel picks the destination itself as the source of a
    datagram to a local address (RFC 6724 rule 1 for IPv6; a local route without a preferred
    source for IPv4), which misses only local ranges routed with a preferred source.
    Multicast and broadcast addresses are never local here (binding to them proves nothing).

    @param host: an IPv4 or IPv6 literal; anything else is not local.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    if address.is_multicast or address.is_unspecified or (
        address.version == 4 and address == ipaddress.IPv4Address("255.255.255.255")
    ):
        return _sourceFor(address, family) == address
    if not _bindable(address, family):
        return False
    return not _nonlocalBind(family) or _sourceFor(address, family) == address
