# -*- test-case-name: tests.test_stun_attributes -*-
"""
STUN attributes as typed frozen dataclasses, and their value codecs.

Every attribute class has a class attribute C{TYPE} (an L{AttributeType}), an
C{encodeValue(transactionId)} method returning the value bytes (without the attribute header or
padding) and a C{decodeValue(value, transactionId)} class method that checks the value and raises
L{StunDecodeError} when it is malformed.  L{ATTRIBUTE_CLASSES} maps every known type to its class.

Addresses are C{str} IPv4 or IPv6 literals formatted as the C{socket} module formats them, so a
decoded XOR-PEER-ADDRESS compares equal to the address a relay socket reports for that peer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import IntEnum
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Optional

#: The fixed value of bytes 4-8 of every STUN message (RFC 8489 section 5).
MAGIC_COOKIE = 0x2112A442

_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_PORT_MASK = MAGIC_COOKIE >> 16

#: Address family code (RFC 8489 section 14.1) to the socket family and the value length.
_FAMILIES = {1: (AF_INET, 8), 2: (AF_INET6, 20)}

_ADDRESS_HEADER = struct.Struct("!xBH")
_ALGORITHM_HEADER = struct.Struct("!HH")
_EMPTY = struct.Struct("")
#: One byte followed by three reserved ones.
_LEADING_BYTE = struct.Struct("!B3x")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class StunDecodeError(Exception):
    """
    The bytes given to the codec are not a valid STUN message or ChannelData message.

    This is the only exception the decoders raise.

    @ivar header: C{(method, messageClass, transactionId)} when the 20-byte STUN header was well
        formed (so a server can still answer a request with 400), else L{None}.
    """

    def __init__(self, reason: str, header: Optional[tuple] = None) -> None:
        super().__init__(reason)
        self.header = header


class AttributeType(IntEnum):
    """
    The STUN attribute types this codec knows (the IANA "STUN Attributes" registry).

    Types below 0x8000 are comprehension-required, the others comprehension-optional.
    """

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    CONNECTION_ID = 0x002A
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B
    # Unassigned by IANA; coturn's clients still use these (see the classes below).
    ADDITIONAL_ADDRESS_FAMILY_DRAFT = 0x8032
    ADDRESS_ERROR_CODE_DRAFT = 0x8033


def _error(cls: type, reason: str) -> StunDecodeError:
    """
    @return: a L{StunDecodeError} naming the attribute C{cls} decodes, e.g. C{"USERNAME: ..."}.
    """
    return StunDecodeError(f"{cls.TYPE.name.replace('_', '-')}: {reason}")


def _unpack(cls: type, layout: struct.Struct, value: bytes) -> tuple:
    """
    Unpack a fixed-length attribute value, checking its length first.
    """
    if len(value) != layout.size:
        raise _error(cls, f"{len(value)} bytes, expected {layout.size}")
    return layout.unpack(value)


def _decodeText(cls: type, value: bytes, maxBytes: int, encoding: str = "utf-8") -> str:
    """
    Decode text of at most C{maxBytes} bytes.
    """
    if len(value) > maxBytes:
        raise _error(cls, f"{len(value)} bytes, at most {maxBytes} allowed")
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise _error(cls, f"not valid {encoding}") from None


def _encodeCode(prefix: bytes, code: int, reason: str) -> bytes:
    """
    Encode the class/number/reason tail shared by ERROR-CODE and ADDRESS-ERROR-CODE.
    """
    return prefix + bytes((code // 100, code % 100)) + reason.encode("utf-8")


def _decodeCode(cls: type, value: bytes) -> tuple[int, str]:
    """
    Decode the class (byte 2), number (byte 3) and reason phrase (the rest) shared by ERROR-CODE
    and ADDRESS-ERROR-CODE (RFC 8489 section 14.8).

    @return: C{(code, reason)}
    """
    if len(value) < 4:
        raise _error(cls, f"{len(value)} bytes, at least 4 expected")
    errorClass = value[2] & 0x07
    number = value[3]
    if not 3 <= errorClass <= 6:
        raise _error(cls, f"error class {errorClass} is not between 3 and 6")
    if number > 99:
        raise _error(cls, f"error number {number} is not between 0 and 99")
    return errorClass * 100 + number, _decodeText(cls, value[4:], 763)


def _packHost(host: str) -> tuple[int, bytes]:
    """
    @return: the RFC 8489 family code and the packed address of an IPv4 or IPv6 literal.
    @raise ValueError: C{host} is not an IP address literal.
    """
    family = 2 if ":" in host else 1
    try:
        return family, inet_pton(_FAMILIES[family][0], host)
    except OSError:
        raise ValueError(f"not an IP address literal: {host!r}") from None


def _unpackAddress(cls: type, value: bytes) -> tuple[int, int, bytes]:
    """
    Split an RFC 8489 section 14.1 address value, checking family and length.

    @return: C{(socket family, port, packed address)}, port and address as on the wire.
    """
    if len(value) < 4:
        raise _error(cls, f"{len(value)} bytes is too short for an address")
    family = value[1]
    if family not in _FAMILIES:
        raise _error(cls, f"unknown address family {family} (1 is IPv4, 2 is IPv6)")
    socketFamily, expected = _FAMILIES[family]
    if len(value) != expected:
        raise _error(cls, f"{len(value)} bytes for address family {family}, expected {expected}")
    return socketFamily, (value[2] << 8) | value[3], value[4:]


def _xor(data: bytes, key: bytes) -> bytes:
    """
    XOR C{data} with the first C{len(data)} bytes of C{key}.
    """
    size = len(data)
    mask = int.from_bytes(key[:size], "big")
    return (int.from_bytes(data, "big") ^ mask).to_bytes(size, "big")


def _encodeAlgorithm(algorithm: int, parameters: bytes) -> bytes:
    """
    Encode one RFC 8489 section 14.11 algorithm entry, its parameters zero-padded to 4 bytes.
    """
    size = len(parameters)
    return _ALGORITHM_HEADER.pack(algorithm, size) + parameters + bytes(-size & 3)


def _decodeAlgorithms(cls: type, value: bytes) -> tuple[tuple[int, bytes], ...]:
    """
    Decode a sequence of RFC 8489 section 14.11 algorithm entries, each padded to 4 bytes.
    """
    algorithms = []
    offset = 0
    end = len(value)
    while offset < end:
        if end - offset < 4:
            raise _error(cls, f"truncated algorithm entry at offset {offset}")
        algorithm, size = _ALGORITHM_HEADER.unpack_from(value, offset)
        start = offset + 4
        if start + size > end:
            raise _error(cls, f"parameters of algorithm {algorithm} run past the attribute")
        algorithms.append((algorithm, value[start : start + size]))
        offset = start + size + (-size & 3)
    return tuple(algorithms)


class _Packed:
    """
    Mixin for attributes whose value is a fixed C{struct} layout (C{_LAYOUT}) of their fields,
    in field order.
    """

    _LAYOUT = _EMPTY

    def encodeValue(self, transactionId: bytes) -> bytes:
        return self._LAYOUT.pack(*[getattr(self, f.name) for f in fields(self)])

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        return cls(*_unpack(cls, cls._LAYOUT, value))


@dataclass(frozen=True)
class _Address:
    """
    Base of the attributes encoded as MAPPED-ADDRESS is (RFC 8489 section 14.1).

    @ivar host: an IPv4 or IPv6 literal; the family on the wire follows from it.
    @ivar port: the port.
    """

    host: str
    port: int

    def encodeValue(self, transactionId: bytes) -> bytes:
        family, packed = _packHost(self.host)
        return _ADDRESS_HEADER.pack(family, self.port) + packed

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        socketFamily, port, packed = _unpackAddress(cls, value)
        return cls(inet_ntop(socketFamily, packed), port)


@dataclass(frozen=True)
class _XorAddress(_Address):
    """
    Base of the attributes encoded as XOR-MAPPED-ADDRESS is (RFC 8489 section 14.2): the port is
    XOR-ed with the top half of the magic cookie, the address with the magic cookie followed by
    the transaction id.
    """

    def encodeValue(self, transactionId: bytes) -> bytes:
        family, packed = _packHost(self.host)
        return _ADDRESS_HEADER.pack(family, self.port ^ _PORT_MASK) + _xor(
            packed, _COOKIE_BYTES + transactionId
        )

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        socketFamily, port, packed = _unpackAddress(cls, value)
        host = inet_ntop(socketFamily, _xor(packed, _COOKIE_BYTES + transactionId))
        return cls(host, port ^ _PORT_MASK)


@dataclass(frozen=True)
class _Text:
    """
    Base of the attributes whose value is text of bounded length.

    @ivar value: the text.
    """

    value: str
    _MAX_BYTES = 763
    _ENCODING = "utf-8"

    def encodeValue(self, transactionId: bytes) -> bytes:
        return self.value.encode(self._ENCODING)

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        return cls(_decodeText(cls, value, cls._MAX_BYTES, cls._ENCODING))


@dataclass(frozen=True)
class MappedAddress(_Address):
    """
    MAPPED-ADDRESS: the reflexive transport address, not obfuscated (RFC 8489 section 14.1).
    """

    TYPE = AttributeType.MAPPED_ADDRESS


@dataclass(frozen=True)
class XorMappedAddress(_XorAddress):
    """
    XOR-MAPPED-ADDRESS: the reflexive transport address, XOR-obfuscated (RFC 8489 section 14.2).
    """

    TYPE = AttributeType.XOR_MAPPED_ADDRESS


@dataclass(frozen=True)
class Username(_Text):
    """
    USERNAME: the user name of a credential, UTF-8, at most 513 bytes (RFC 8489 section 14.3).
    """

    TYPE = AttributeType.USERNAME
    _MAX_BYTES = 513


@dataclass(frozen=True)
class Userhash(_Packed):
    """
    USERHASH: SHA-256 of the username and realm, for username anonymity (RFC 8489 section 14.4).

    @ivar value: the 32-byte hash.
    """

    value: bytes
    TYPE = AttributeType.USERHASH
    _LAYOUT = struct.Struct("32s")


@dataclass(frozen=True)
class MessageIntegrity(_Packed):
    """
    MESSAGE-INTEGRITY: HMAC-SHA1 of the message before it (RFC 8489 section 14.5).

    @ivar value: the 20-byte MAC.
    """

    value: bytes
    TYPE = AttributeType.MESSAGE_INTEGRITY
    _LAYOUT = struct.Struct("20s")


@dataclass(frozen=True)
class MessageIntegritySha256:
    """
    MESSAGE-INTEGRITY-SHA256: HMAC-SHA256 of the message before it, possibly truncated to 16 to
    32 bytes in steps of 4 (RFC 8489 section 14.6).

    @ivar value: the MAC.
    """

    value: bytes
    TYPE = AttributeType.MESSAGE_INTEGRITY_SHA256

    def encodeValue(self, transactionId: bytes) -> bytes:
        return self.value

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        if not 16 <= len(value) <= 32 or len(value) % 4:
            raise _error(cls, f"{len(value)} bytes, expected 16 to 32 in steps of 4")
        return cls(value)


@dataclass(frozen=True)
class Fingerprint(_Packed):
    """
    FINGERPRINT: CRC-32 of the message before it, XOR-ed with 0x5354554e (RFC 8489 section 14.7).

    @ivar value: the 32-bit fingerprint.
    """

    value: int
    TYPE = AttributeType.FINGERPRINT
    _LAYOUT = _U32


@dataclass(frozen=True)
class ErrorCode:
    """
    ERROR-CODE: the error of an error response (RFC 8489 section 14.8).

    @ivar code: 300 to 699.
    @ivar reason: the reason phrase.
    """

    code: int
    reason: str
    TYPE = AttributeType.ERROR_CODE

    def encodeValue(self, transactionId: bytes) -> bytes:
        return _encodeCode(b"\x00\x00", self.code, self.reason)

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        return cls(*_decodeCode(cls, value))


@dataclass(frozen=True)
class Realm(_Text):
    """
    REALM: the realm of the long-term credential, UTF-8, at most 763 bytes
    (RFC 8489 section 14.9).
    """

    TYPE = AttributeType.REALM


@dataclass(frozen=True)
class Nonce(_Text):
    """
    NONCE: the server's nonce, at most 763 bytes (RFC 8489 section 14.10).
    """

    TYPE = AttributeType.NONCE


@dataclass(frozen=True)
class PasswordAlgorithms:
    """
    PASSWORD-ALGORITHMS: the algorithms the server offers for the long-term key
    (RFC 8489 section 14.11).

    @ivar algorithms: C{(algorithm, parameters)} pairs in order of preference.
    """

    algorithms: tuple[tuple[int, bytes], ...]
    TYPE = AttributeType.PASSWORD_ALGORITHMS

    def encodeValue(self, transactionId: bytes) -> bytes:
        return b"".join([_encodeAlgorithm(*entry) for entry in self.algorithms])

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        return cls(_decodeAlgorithms(cls, value))


@dataclass(frozen=True)
class PasswordAlgorithm:
    """
    PASSWORD-ALGORITHM: the algorithm the client chose for the long-term key
    (RFC 8489 section 14.12).

    @ivar algorithm: 1 for MD5, 2 for SHA-256.
    @ivar parameters: the algorithm's parameters (none for those two).
    """

    algorithm: int
    parameters: bytes = b""
    TYPE = AttributeType.PASSWORD_ALGORITHM

    def encodeValue(self, transactionId: bytes) -> bytes:
        return _encodeAlgorithm(self.algorithm, self.parameters)

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        algorithms = _decodeAlgorithms(cls, value)
        if len(algorithms) != 1:
            raise _error(cls, f"{len(algorithms)} algorithms, expected exactly one")
        return cls(*algorithms[0])


@dataclass(frozen=True)
class UnknownAttributes:
    """
    UNKNOWN-ATTRIBUTES: the comprehension-required attributes a 420 response did not understand
    (RFC 8489 section 14.13).

    @ivar types: the attribute types.
    """

    types: tuple[int, ...]
    TYPE = AttributeType.UNKNOWN_ATTRIBUTES

    def encodeValue(self, transactionId: bytes) -> bytes:
        return struct.pack(f"!{len(self.types)}H", *self.types)

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        if len(value) % 2:
            raise _error(cls, f"{len(value)} bytes is not a whole number of 16-bit types")
        return cls(struct.unpack(f"!{len(value) // 2}H", value))


@dataclass(frozen=True)
class Software(_Text):
    """
    SOFTWARE: the agent's software and version, UTF-8, at most 763 bytes
    (RFC 8489 section 14.14).
    """

    TYPE = AttributeType.SOFTWARE


@dataclass(frozen=True)
class AlternateServer(_Address):
    """
    ALTERNATE-SERVER: the server the client should try instead (RFC 8489 section 14.15).
    """

    TYPE = AttributeType.ALTERNATE_SERVER


@dataclass(frozen=True)
class AlternateDomain(_Text):
    """
    ALTERNATE-DOMAIN: the DNS name to verify the ALTERNATE-SERVER certificate with, ASCII, at
    most 255 bytes (RFC 8489 section 14.16).
    """

    TYPE = AttributeType.ALTERNATE_DOMAIN
    _MAX_BYTES = 255
    _ENCODING = "ascii"


@dataclass(frozen=True)
class ChannelNumber(_Packed):
    """
    CHANNEL-NUMBER: a channel number followed by two reserved bytes (RFC 8656 section 18.1).

    @ivar number: the channel number (the server accepts 0x4000 to 0x7FFF and checks it).
    """

    number: int
    TYPE = AttributeType.CHANNEL_NUMBER
    _LAYOUT = struct.Struct("!H2x")


@dataclass(frozen=True)
class Lifetime(_Packed):
    """
    LIFETIME: the seconds until an allocation expires (RFC 8656 section 18.2).

    @ivar seconds: the lifetime.
    """

    seconds: int
    TYPE = AttributeType.LIFETIME
    _LAYOUT = _U32


@dataclass(frozen=True)
class XorPeerAddress(_XorAddress):
    """
    XOR-PEER-ADDRESS: a peer's transport address, XOR-obfuscated (RFC 8656 section 18.3).
    """

    TYPE = AttributeType.XOR_PEER_ADDRESS


@dataclass(frozen=True)
class Data:
    """
    DATA: the application data of a Send or Data indication (RFC 8656 section 18.4).

    @ivar value: the payload.
    """

    value: bytes
    TYPE = AttributeType.DATA

    def encodeValue(self, transactionId: bytes) -> bytes:
        return self.value

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        return cls(value)


@dataclass(frozen=True)
class XorRelayedAddress(_XorAddress):
    """
    XOR-RELAYED-ADDRESS: the relayed transport address of an allocation, XOR-obfuscated
    (RFC 8656 section 18.5).
    """

    TYPE = AttributeType.XOR_RELAYED_ADDRESS


@dataclass(frozen=True)
class RequestedAddressFamily(_Packed):
    """
    REQUESTED-ADDRESS-FAMILY: the family of the relayed address asked for
    (RFC 8656 section 18.6).

    @ivar family: 1 for IPv4, 2 for IPv6.  Other values decode too: the server answers them
        with 440 (RFC 8656 section 7.2), so the codec does not refuse them.
    """

    family: int
    TYPE = AttributeType.REQUESTED_ADDRESS_FAMILY
    _LAYOUT = _LEADING_BYTE


@dataclass(frozen=True)
class EvenPort:
    """
    EVEN-PORT: ask for an even relay port, and optionally to reserve the next one
    (RFC 8656 section 18.7).

    @ivar reserve: the R bit: reserve the next-higher port.
    """

    reserve: bool
    TYPE = AttributeType.EVEN_PORT

    def encodeValue(self, transactionId: bytes) -> bytes:
        return b"\x80" if self.reserve else b"\x00"

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        if len(value) != 1:
            raise _error(cls, f"{len(value)} bytes, expected 1")
        # The other seven bits are reserved and ignored on reception.
        return cls(bool(value[0] & 0x80))


@dataclass(frozen=True)
class RequestedTransport(_Packed):
    """
    REQUESTED-TRANSPORT: the IP protocol to relay, followed by three reserved bytes
    (RFC 8656 section 18.8).

    @ivar protocol: the IP protocol number (17 is UDP).
    """

    protocol: int
    TYPE = AttributeType.REQUESTED_TRANSPORT
    _LAYOUT = _LEADING_BYTE


@dataclass(frozen=True)
class DontFragment(_Packed):
    """
    DONT-FRAGMENT: ask the server to set the DF bit towards peers; no value
    (RFC 8656 section 18.9).
    """

    TYPE = AttributeType.DONT_FRAGMENT


@dataclass(frozen=True)
class ReservationToken(_Packed):
    """
    RESERVATION-TOKEN: names a relay port the server reserved (RFC 8656 section 18.10).

    @ivar token: 8 bytes.
    """

    token: bytes
    TYPE = AttributeType.RESERVATION_TOKEN
    _LAYOUT = struct.Struct("8s")


@dataclass(frozen=True)
class AdditionalAddressFamily(_Packed):
    """
    ADDITIONAL-ADDRESS-FAMILY: ask for a second relayed address of this family
    (RFC 8656 section 18.11).

    @ivar family: 2 (IPv6) is the only value valid in a request; the server checks.
    """

    family: int
    TYPE = AttributeType.ADDITIONAL_ADDRESS_FAMILY
    _LAYOUT = _LEADING_BYTE


@dataclass(frozen=True)
class AddressErrorCode:
    """
    ADDRESS-ERROR-CODE: why the relayed address of one family was not allocated
    (RFC 8656 section 18.12).

    @ivar family: 1 for IPv4, 2 for IPv6.
    @ivar code: the error code (440 or 508).
    @ivar reason: the reason phrase.
    """

    family: int
    code: int
    reason: str
    TYPE = AttributeType.ADDRESS_ERROR_CODE

    def encodeValue(self, transactionId: bytes) -> bytes:
        return _encodeCode(bytes((self.family, 0)), self.code, self.reason)

    @classmethod
    def decodeValue(cls, value: bytes, transactionId: bytes):
        code, reason = _decodeCode(cls, value)
        return cls(value[0], code, reason)


@dataclass(frozen=True)
class AdditionalAddressFamilyDraft(AdditionalAddressFamily):
    """
    ADDITIONAL-ADDRESS-FAMILY of RFC 8656 section 18.11 (0x8000) under 0x8032, the code point
    coturn gave it before the RFC ("SSODA") and its clients (C{turnutils_uclient -Z}) still
    use.  IANA leaves 0x8031-0xBFFF unassigned, so nothing else means 0x8032; a server treats
    it as L{AdditionalAddressFamily}.
    """

    TYPE = AttributeType.ADDITIONAL_ADDRESS_FAMILY_DRAFT


@dataclass(frozen=True)
class AddressErrorCodeDraft(AddressErrorCode):
    """
    ADDRESS-ERROR-CODE of RFC 8656 section 18.12 (0x8001) under 0x8033, coturn's code point
    for it, for clients that asked with L{AdditionalAddressFamilyDraft}.
    """

    TYPE = AttributeType.ADDRESS_ERROR_CODE_DRAFT


@dataclass(frozen=True)
class Icmp(_Packed):
    """
    ICMP: an ICMP error the relay received from a peer (RFC 8656 section 18.13).

    @ivar type: the ICMP type.
    @ivar code: the ICMP code.
    @ivar data: the error data (the next-hop MTU for "packet too big", else 0).
    """

    type: int
    code: int
    data: int
    TYPE = AttributeType.ICMP
    _LAYOUT = struct.Struct("!2xBBI")


@dataclass(frozen=True)
class ConnectionId(_Packed):
    """
    CONNECTION-ID: identifies a TCP peer data connection (RFC 6062 section 6.2.1).

    @ivar value: the 32-bit connection id.
    """

    value: int
    TYPE = AttributeType.CONNECTION_ID
    _LAYOUT = _U32


@dataclass(frozen=True)
class Priority(_Packed):
    """
    PRIORITY: the priority of a peer-reflexive candidate (RFC 8445 section 16.1).

    @ivar value: the 32-bit priority.
    """

    value: int
    TYPE = AttributeType.PRIORITY
    _LAYOUT = _U32


@dataclass(frozen=True)
class UseCandidate(_Packed):
    """
    USE-CANDIDATE: the controlling agent nominates this pair; no value (RFC 8445 section 16.1).
    """

    TYPE = AttributeType.USE_CANDIDATE


@dataclass(frozen=True)
class IceControlled(_Packed):
    """
    ICE-CONTROLLED: the sender is the controlled agent (RFC 8445 section 16.1).

    @ivar value: the 64-bit tie-breaker.
    """

    value: int
    TYPE = AttributeType.ICE_CONTROLLED
    _LAYOUT = _U64


@dataclass(frozen=True)
class IceControlling(_Packed):
    """
    ICE-CONTROLLING: the sender is the controlling agent (RFC 8445 section 16.1).

    @ivar value: the 64-bit tie-breaker.
    """

    value: int
    TYPE = AttributeType.ICE_CONTROLLING
    _LAYOUT = _U64


@dataclass(frozen=True)
class ResponseOrigin(_Address):
    """
    RESPONSE-ORIGIN: the address a response was sent from (RFC 5780 section 7.3).
    """

    TYPE = AttributeType.RESPONSE_ORIGIN


#: The attribute class for every known attribute type.
ATTRIBUTE_CLASSES: dict[AttributeType, type] = {
    cls.TYPE: cls
    for cls in (
        MappedAddress,
        XorMappedAddress,
        Username,
        Userhash,
        MessageIntegrity,
        MessageIntegritySha256,
        Fingerprint,
        ErrorCode,
        Realm,
        Nonce,
        PasswordAlgorithms,
        PasswordAlgorithm,
        UnknownAttributes,
        Software,
        AlternateServer,
        AlternateDomain,
        ChannelNumber,
        Lifetime,
        XorPeerAddress,
        Data,
        XorRelayedAddress,
        RequestedAddressFamily,
        EvenPort,
        RequestedTransport,
        DontFragment,
        ReservationToken,
        AdditionalAddressFamily,
        AddressErrorCode,
        AdditionalAddressFamilyDraft,
        AddressErrorCodeDraft,
        Icmp,
        ConnectionId,
        Priority,
        UseCandidate,
        IceControlled,
        IceControlling,
        ResponseOrigin,
    )
}
