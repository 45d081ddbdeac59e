# -*- test-case-name: tests.test_stun_message -*-
"""
STUN messages (RFC 8489 section 5): the header, the attribute list, and their codec.

L{decodeMessage} parses in one pass and raises only L{StunDecodeError}; L{encodeMessage} builds a
message and optionally appends MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.  Messages without the
magic cookie (RFC 3489) are not supported.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Optional

from twisted_turn.stun.attributes import (
    ATTRIBUTE_CLASSES,
    MAGIC_COOKIE,
    AttributeType,
    Fingerprint,
    MessageIntegrity,
    MessageIntegritySha256,
    StunDecodeError,
)
from twisted_turn.stun.integrity import _fingerprint, _mac

__all__ = [
    "MAGIC_COOKIE",
    "Message",
    "MessageClass",
    "Method",
    "StunDecodeError",
    "decodeMessage",
    "decodeSendIndication",
    "encodeDataIndication",
    "encodeMessage",
    "newTransactionId",
]

_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE_HEADER = struct.Struct("!HH")
_LENGTH = struct.Struct("!H")

# Plain ints: comparing with an IntEnum member is slower, and this is the decode loop.
_FINGERPRINT = int(AttributeType.FINGERPRINT)
_MESSAGE_INTEGRITY = int(AttributeType.MESSAGE_INTEGRITY)
_MESSAGE_INTEGRITY_SHA256 = int(AttributeType.MESSAGE_INTEGRITY_SHA256)


class Method(IntEnum):
    """
    The STUN methods of RFC 8489, RFC 8656 and RFC 6062.
    """

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class MessageClass(IntEnum):
    """
    The class of a STUN message; the values are the two class bits C1 C0.
    """

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


_METHODS = {method.value: method for method in Method}
_CLASSES = tuple(MessageClass)


@dataclass(frozen=True)
class Message:
    """
    A decoded STUN message.

    @ivar method: the method, a L{Method} when known.
    @ivar messageClass: the class.
    @ivar transactionId: the 12-byte transaction id.
    @ivar attributes: the known attributes in wire order.  Those after MESSAGE-INTEGRITY are
        dropped except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, those after
        MESSAGE-INTEGRITY-SHA256 except FINGERPRINT, and all after FINGERPRINT (RFC 8489 section
        9).
    @ivar unknownRequired: the comprehension-required attribute types the codec does not know, in
        wire order, for a 420 response.
    @ivar raw: the message as received.
    """

    method: int
    messageClass: MessageClass
    transactionId: bytes
    attributes: tuple
    unknownRequired: tuple[int, ...] = ()
    raw: bytes = b""
    # Where the MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT attribute headers
    # start in raw, for the verifiers in twisted_turn.stun.integrity.
    _integrityOffset: Optional[int] = field(default=None, compare=False, repr=False)
    _sha256Offset: Optional[int] = field(default=None, compare=False, repr=False)
    _fingerprintOffset: Optional[int] = field(default=None, compare=False, repr=False)

    def get(self, attributeClass: type):
        """
        @return: the first attribute of class C{attributeClass}, or L{None}.
        """
        for attribute in self.attributes:
            if type(attribute) is attributeClass:
                return attribute
        return None

    def getAll(self, attributeClass: type) -> tuple:
        """
        @return: every attribute of class C{attributeClass}, in wire order.
        """
        return tuple(a for a in self.attributes if type(a) is attributeClass)


def newTransactionId() -> bytes:
    """
    @return: a new random 12-byte transaction id, from the operating system's CSPRNG.
    """
    return os.urandom(12)


def _messageType(method: int, messageClass: int) -> int:
    """
    Interleave the 12 method bits and 2 class bits as RFC 8489 section 5 lays them out:
    M11-M7, C1, M6-M4, C0, M3-M0.
    """
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((messageClass & 0x1) << 4)
        | ((messageClass & 0x2) << 7)
    )


_DATA_INDICATION_TYPE = _messageType(Method.DATA, MessageClass.INDICATION)


def _attribute(attribute, transactionId: bytes) -> bytes:
    """
    @return: one attribute with its header and zero padding to 4 bytes.
    """
    value = attribute.encodeValue(transactionId)
    size = len(value)
    if size > 0xFFFF:
        raise ValueError(f"{attribute.TYPE.name} value of {size} bytes is too long")
    return _ATTRIBUTE_HEADER.pack(attribute.TYPE, size) + value + bytes(-size & 3)


def encodeMessage(
    method: int,
    messageClass: MessageClass,
    transactionId: bytes,
    attributes: Iterable,
    *,
    integrityKey: Optional[bytes] = None,
    integritySha256: bool = False,
    fingerprint: bool = False,
) -> bytes:
    """
    Encode a STUN message.

    @param attributes: attribute instances, encoded in this order.
    @param integrityKey: when given, append MESSAGE-INTEGRITY computed with this key (the
        password for short-term credentials, the long-term key otherwise).
    @param integritySha256: with C{integrityKey}, append a 32-byte MESSAGE-INTEGRITY-SHA256
        instead of MESSAGE-INTEGRITY.
    @param fingerprint: append FINGERPRINT last.
    @raise ValueError: the method, transaction id or total length is out of range.
    """
    if not 0 <= method <= 0xFFF:
        raise ValueError(f"method 0x{method:x} does not fit in 12 bits")
    if len(transactionId) != 12:
        raise ValueError(f"transaction id of {len(transactionId)} bytes, expected 12")
    # The length field is rewritten below once the length is known.
    header = _HEADER.pack(_messageType(method, messageClass), 0, MAGIC_COOKIE, transactionId)
    message = b"".join([header] + [_attribute(a, transactionId) for a in attributes])
    trailer = 0 if integrityKey is None else 36 if integritySha256 else 24
    if fingerprint:
        trailer += 8
    if len(message) - 20 + trailer > 0xFFFF:
        raise ValueError(f"message of {len(message) - 20 + trailer} bytes is too long for STUN")
    if integrityKey is not None:
        if integritySha256:
            mac = MessageIntegritySha256(_mac(message, integrityKey, True, 32))
        else:
            mac = MessageIntegrity(_mac(message, integrityKey, False, 20))
        message += _attribute(mac, transactionId)
    if fingerprint:
        message += _attribute(Fingerprint(_fingerprint(message)), transactionId)
    return message[:2] + _LENGTH.pack(len(message) - 20) + message[4:]


# A Data indication carrying an IPv4 / IPv6 XOR-PEER-ADDRESS, up to DATA's attribute header.
_DATA_INDICATION_4 = struct.Struct("!HHI12sHHBBHIHH")
_DATA_INDICATION_6 = struct.Struct("!HHI12sHHBBH16sHH")
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
# The message length field is 16 bits; an IPv6 XOR-PEER-ADDRESS and DATA's header take 28.
_DATA_INDICATION_MAX = 0xFFFF - 28 - 3


def encodeDataIndication(transactionId: bytes, host: str, port: int, data: bytes) -> bytes:
    """
    Encode a Data indication (RFC 8656 section 11.4) with XOR-PEER-ADDRESS and DATA, byte for
    byte what L{encodeMessage} makes of the same attributes, in one C{struct} call: peer data
    for clients without a channel goes through here once per datagram.

    @param host: the peer's address as the socket module reports it.
    @raise ValueError: C{data} does not fit in one STUN message with the peer address.
    """
    size = len(data)
    if size > _DATA_INDICATION_MAX:
        raise ValueError(f"{size} bytes of data do not fit in a Data indication")
    padding = bytes(-size & 3)
    if ":" in host:
        packed = int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
        mask = int.from_bytes(_COOKIE_BYTES + transactionId, "big")
        header = _DATA_INDICATION_6.pack(
            _DATA_INDICATION_TYPE, 28 + size + len(padding), MAGIC_COOKIE, transactionId,
            0x0012, 20, 0, 2, port ^ 0x2112, (packed ^ mask).to_bytes(16, "big"),
            0x0013, size,
        )
    else:
        packed = int.from_bytes(socket.inet_aton(host), "big")
        header = _DATA_INDICATION_4.pack(
            _DATA_INDICATION_TYPE, 16 + size + len(padding), MAGIC_COOKIE, transactionId,
            0x0012, 8, 0, 1, port ^ 0x2112, packed ^ MAGIC_COOKIE, 0x0013, size,
        )
    return header + data + padding


_SEND_INDICATION_TYPE = 0x0016
_XOR_PEER_ADDRESS = int(AttributeType.XOR_PEER_ADDRESS)
_DATA = int(AttributeType.DATA)
_DONT_FRAGMENT = int(AttributeType.DONT_FRAGMENT)
_SHORT_HEADER = struct.Struct("!HHI")
_XOR_PEER_4 = struct.Struct("!BBHI")


def decodeSendIndication(data: bytes) -> Optional[tuple]:
    """
    Decode the common Send indication (RFC 8656 section 11.1) in one pass: an IPv4
    XOR-PEER-ADDRESS, DATA, and perhaps DONT-FRAGMENT, each once, and nothing else.  Clients
    without channels send all their media this way.

    Anything else (an IPv6 peer, FINGERPRINT, any other attribute, anything malformed) gives
    L{None}, and the caller decodes the message with L{decodeMessage}: this function never
    decides what the full decoder would decide differently.

    @return: C{(host, port, payload)} or L{None}.
    """
    end = len(data)
    if end < 20:
        return None
    messageType, length, cookie = _SHORT_HEADER.unpack_from(data)
    if messageType != _SEND_INDICATION_TYPE or cookie != MAGIC_COOKIE or length != end - 20:
        return None
    if length & 3:
        return None
    offset = 20
    peer = payload = None
    while offset < end:
        if offset + 4 > end:
            return None
        attributeType, size = _ATTRIBUTE_HEADER.unpack_from(data, offset)
        start = offset + 4
        stop = start + size
        if stop > end:
            return None
        if attributeType == _XOR_PEER_ADDRESS and peer is None and size == 8:
            reserved, family, port, address = _XOR_PEER_4.unpack_from(data, start)
            if reserved or family != 1:
                return None
            peer = (socket.inet_ntoa((address ^ MAGIC_COOKIE).to_bytes(4, "big")), port ^ 0x2112)
        elif attributeType == _DATA and payload is None:
            payload = data[start:stop]
        elif attributeType != _DONT_FRAGMENT or size:
            return None
        offset = stop + (-size & 3)
    if peer is None or payload is None:
        return None
    return peer[0], peer[1], payload


def decodeMessage(data: bytes) -> Message:
    """
    Decode one STUN message (a whole datagram, or one framed message of a stream).

    Attribute padding may hold any bytes.  Unknown comprehension-optional attributes are
    skipped; unknown comprehension-required ones are listed in L{Message.unknownRequired}.

    @raise StunDecodeError: C{data} is not a valid STUN message.  Its C{header} is set when the
        20-byte header was valid and something after it was not.
    """
    end = len(data)
    if end < 20:
        raise StunDecodeError(f"{end} bytes is shorter than the 20-byte STUN header")
    messageType, length, cookie, transactionId = _HEADER.unpack_from(data)
    if messageType & 0xC000:
        raise StunDecodeError("the top two bits of the message type are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError("no magic cookie (RFC 3489 messages are not supported)")
    if length & 3:
        raise StunDecodeError(f"message length {length} is not a multiple of 4")
    if length != end - 20:
        raise StunDecodeError(f"message length {length} but {end - 20} bytes follow the header")
    method = (messageType & 0x000F) | ((messageType & 0x00E0) >> 1) | ((messageType & 0x3E00) >> 2)
    messageClass = _CLASSES[((messageType >> 4) & 0x1) | ((messageType >> 7) & 0x2)]
    method = _METHODS.get(method, method)

    attributes = []
    unknownRequired = []
    integrityOffset = sha256Offset = fingerprintOffset = None
    offset = 20
    try:
        # Every attribute starts 4-byte aligned and the length is a multiple of 4, so a whole
        # attribute header always fits when offset < end.
        while offset < end:
            attributeType, size = _ATTRIBUTE_HEADER.unpack_from(data, offset)
            valueEnd = offset + 4 + size
            if valueEnd > end:
                raise StunDecodeError(
                    f"attribute 0x{attributeType:04x} of {size} bytes runs past the message end"
                )
            # RFC 8489 section 9: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and
            # FINGERPRINT count, after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
            if attributeType == _FINGERPRINT:
                fingerprintOffset = offset
                keep = True
            elif sha256Offset is not None:
                keep = False
            elif attributeType == _MESSAGE_INTEGRITY_SHA256:
                sha256Offset = offset
                keep = True
            elif integrityOffset is not None:
                keep = False
            else:
                keep = True
                if attributeType == _MESSAGE_INTEGRITY:
                    integrityOffset = offset
            if keep:
                attributeClass = ATTRIBUTE_CLASSES.get(attributeType)
                if attributeClass is not None:
                    value = data[offset + 4 : valueEnd]
                    attributes.append(attributeClass.decodeValue(value, transactionId))
                elif attributeType < 0x8000:
                    unknownRequired.append(attributeType)
            if fingerprintOffset is not None:
                # FINGERPRINT is last; anything after it is ignored.
                break
            offset = valueEnd + (-size & 3)
    except StunDecodeError as e:
        e.header = (method, messageClass, transactionId)
        raise
    return Message(
        method,
        messageClass,
        transactionId,
        tuple(attributes),
        tuple(unknownRequired),
        data,
        integrityOffset,
        sha256Offset,
        fingerprintOffset,
    )
