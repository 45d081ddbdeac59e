# -*- test-case-name: tests.test_hostaddress -*-
"""
Whether an address belongs to this host, asked of the kernel at the moment of asking: the peer
policy (L{twisted_turn.policy}) refuses every local address but the relay addresses, so a
client cannot relay to the TURN host's own services through a secondary address, an address
added after start, a range routed locally or an IPv6 anycast address.

On Linux the question goes to the routing table over rtnetlink (C{RTM_GETROUTE}, the lookup
C{ip route get} makes, policy rules included): the address is the host's when the kernel would
deliver a datagram for it here, that is when its route is of type local, anycast or broadcast.
Nothing is sent. Elsewhere a socket is bound to the address, which succeeds for exactly the
interface addresses.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Optional, Union

__all__ = ["isLocalAddress"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# linux/netlink.h and linux/rtnetlink.h.
_NETLINK_ROUTE = 0
_RTM_NEWROUTE, _RTM_GETROUTE = 24, 26
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_RTA_DST = 1
#: Route types whose datagrams the kernel delivers to this host.
_DELIVERED_HERE = frozenset({2, 3, 4})  # RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST
_NLMSGHDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")


class _RouteQuery:
    """
    One rtnetlink socket per process (a forked worker makes its own), asked one question at a
    time from the reactor thread.
    """

    def __init__(self) -> None:
        self._socket: Optional[socket.socket] = None
        self._pid = 0
        self._sequence = 0

    def _open(self) -> socket.socket:
        if self._socket is None or self._pid != os.getpid():
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE)
            sock.settimeout(1.0)
            sock.bind((0, 0))
            self._socket, self._pid = sock, os.getpid()
        return self._socket

    def routeType(self, address: IPAddress) -> Optional[int]:
        """
        The type (C{RTN_*}) of the route the kernel would take to C{address}, or L{None} when
        it has none (unreachable).

        @raise OSError: the question could not be asked.
        """
        sock = self._open()
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        packed = address.packed
        attribute = _RTATTR.pack(_RTATTR.size + len(packed), _RTA_DST) + packed
        body = _RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + attribute
        header = _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, self._sequence, 0
        )
        try:
            sock.send(header + body)
            while True:
                reply = sock.recv(65536)
                length, kind, _, sequence, _ = _NLMSGHDR.unpack_from(reply)
                if sequence != self._sequence:
                    continue  # a late answer to an earlier question that timed out
                if kind == _NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", reply, _NLMSGHDR.size)
                    if error == 0:
                        continue
                    return None
                if kind == _RTM_NEWROUTE:
                    return _RTMSG.unpack_from(reply, _NLMSGHDR.size)[7]
                raise OSError(f"unexpected rtnetlink message type {kind}")
        except (OSError, struct.error):
            # Start afresh next time: the socket may hold a half-read answer.
            self._socket = None
            sock.close()
            raise


_routes = _RouteQuery()


def _bindable(address: IPAddress) -> bool:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def isLocalAddress(host: str) -> bool:
    """
    Whether a datagram to C{host} would be delivered to this host: an address of any of its
    interfaces (secondary ones included), in a range routed locally (all of 127.0.0.0/8,
    anything added with C{ip route add local}, in any table its rules pick), an IPv6 anycast
    address it serves (the subnet-router anycast address of its prefixes when it forwards),
    a broadcast address, or the unspecified address (which reaches the local host).

    Never raises: when the kernel cannot be asked (out of descriptors, say), the answer is
    C{True}, so that the policy refuses rather than allows.

    @param host: an IPv4 or IPv6 literal (a scope id is ignored); anything else is not local.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except (ValueError, AttributeError, TypeError):
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        # The kernel sends to the IPv4 address (on a socket that is not IPv6-only).
        address = address.ipv4_mapped
    if address.is_unspecified:
        return True
    try:
        if hasattr(socket, "AF_NETLINK"):
            return _routes.routeType(address) in _DELIVERED_HERE
        return _bindable(address)
    except Exception:
        return True
