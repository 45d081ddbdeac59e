# -*- test-case-name: tests.test_stun_channeldata -*-
"""
TURN ChannelData messages (RFC 8656 section 12.4) and the first-byte demultiplexing rule that
tells them from STUN messages (RFC 8656 section 12, RFC 7983 section 7).
"""

from __future__ import annotations

import struct
from typing import Optional

from twisted_turn.stun.attributes import StunDecodeError

_HEADER = struct.Struct("!HH")

CHANNEL_MIN = 0x4000
#: RFC 8656 narrowed channel numbers to 0x4000-0x4FFF, but deployed clients (libwebrtc, coturn's
#: turnutils) still pick them from RFC 5766's 0x4000-0x7FFF, and a server that refuses those
#: breaks their channels.  First bytes 0x50-0x7F collide with nothing in RFC 7983's demux, so
#: the wider range is accepted (docs/design.md, "Channel numbers").
CHANNEL_MAX = 0x7FFF


def encodeChannelData(channel: int, data: bytes, pad: bool = False) -> bytes:
    """
    @param channel: the channel number, 0x4000 to 0x7FFF.
    @param data: the application data, at most 65535 bytes.
    @param pad: pad with zeros to a multiple of 4 bytes, as streams (TCP, TLS) require.
    @raise ValueError: the channel number or the data length is out of range.
    """
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise ValueError(f"channel number 0x{channel:x} is outside 0x4000-0x7FFF")
    size = len(data)
    if size > 0xFFFF:
        raise ValueError(f"{size} bytes of data do not fit in one ChannelData message")
    if pad:
        return _HEADER.pack(channel, size) + data + bytes(-size & 3)
    return _HEADER.pack(channel, size) + data


def decodeChannelData(data: bytes) -> tuple[int, bytes]:
    """
    Decode a ChannelData message.  Bytes after the length the header gives (padding, which UDP
    senders may include) are ignored.

    @return: C{(channel, payload)}
    @raise StunDecodeError: the header is short, the channel number is out of range or the
        length exceeds the data.
    """
    if len(data) < 4:
        raise StunDecodeError(f"{len(data)} bytes is shorter than the 4-byte ChannelData header")
    channel, size = _HEADER.unpack_from(data)
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise StunDecodeError(f"channel number 0x{channel:04x} is outside 0x4000-0x7FFF")
    if size > len(data) - 4:
        raise StunDecodeError(f"ChannelData length {size} exceeds the {len(data) - 4} bytes given")
    return channel, data[4 : 4 + size]


def classify(data: bytes) -> Optional[str]:
    """
    Tell a STUN message from ChannelData by the first byte: 0-3 is STUN, 0x40-0x7F ChannelData.

    @return: C{"stun"}, C{"channeldata"}, or L{None} for anything else (to be dropped).
    """
    if not data:
        return None
    first = data[0]
    if first < 4:
        return "stun"
    if 0x40 <= first <= 0x7F:
        return "channeldata"
    return None
