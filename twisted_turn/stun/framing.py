# -*- test-case-name: tests.test_stun_framing -*-
"""
Framing of STUN messages and ChannelData on a byte stream (TCP, TLS; RFC 8656 section 12.5).

A stream carries no datagram boundaries, so each message is delimited by its own header: a
STUN message is its 20-byte header plus the length field of that header; ChannelData is its
4-byte header plus its length, padded to a multiple of 4 bytes.  Anything else cannot be
resynchronised, so it ends the connection.  This module is sans-I/O: bytes in, messages out.
"""

from __future__ import annotations

from typing import List

from twisted_turn.stun.attributes import StunDecodeError

#: Largest message the framer accepts: a STUN header and the largest length it can announce.
MAX_MESSAGE = 20 + 0xFFFF


class FramingError(StunDecodeError):
    """
    The stream does not start with a STUN message or ChannelData: the connection must close.
    """


class StreamFramer:
    """
    Split a byte stream into STUN messages and ChannelData messages.

    ChannelData comes out without its stream padding, exactly as it would arrive over UDP, so
    the datagram path handles both alike.

    @ivar maxBuffered: most bytes kept while a message is incomplete; a peer announcing more is
        refused with L{FramingError} rather than buffered.
    @ivar acceptChannelData: whether ChannelData may come now.  A connection turns it on once
        it has an allocation: before that ChannelData cannot be valid, and refusing it at its
        header closes at once a connection that speaks another protocol whose first byte looks
        like ChannelData (an HTTP C{GET}) instead of waiting for its announced length.
    """

    def __init__(self, maxBuffered: int = MAX_MESSAGE, acceptChannelData: bool = True) -> None:
        self.maxBuffered = maxBuffered
        self.acceptChannelData = acceptChannelData
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """
        Bytes received that do not yet make a whole message.
        """
        return len(self._buffer)

    def take(self) -> bytes:
        """
        Remove and return the bytes buffered so far (the stream stops being framed).
        """
        buffer, self._buffer = self._buffer, b""
        return buffer

    def feed(self, data: bytes, limit: int = 0) -> List[bytes]:
        """
        Add bytes from the stream and return every message they complete, in order; with a
        C{limit}, at most that many, the bytes after them staying buffered unparsed (so a
        caller can stop framing after a given message, as RFC 6062's ConnectionBind does).

        @raise FramingError: the stream is not STUN/ChannelData, a STUN length is not a
            multiple of 4, a message would exceed C{maxBuffered}, or ChannelData comes while
            C{acceptChannelData} is off.  Messages completed
            before the bad one are lost with the connection; the caller closes it.
        """
        buffer = self._buffer + data if self._buffer else data
        messages: List[bytes] = []
        offset = 0
        end = len(buffer)
        while end - offset >= 4 and not (limit and len(messages) >= limit):
            first = buffer[offset]
            length = (buffer[offset + 2] << 8) | buffer[offset + 3]
            if first < 4:
                if length & 3:
                    raise FramingError(f"STUN message length {length} is not a multiple of 4")
                size = 20 + length
                wire = size
            elif 0x40 <= first <= 0x7F:
                if not self.acceptChannelData:
                    raise FramingError("ChannelData before an allocation")
                size = 4 + length
                wire = size + (-length & 3)
            else:
                raise FramingError(f"a stream message cannot start with 0x{first:02x}")
            if wire > self.maxBuffered:
                raise FramingError(
                    f"a {wire}-byte message exceeds the {self.maxBuffered} bytes allowed"
                )
            if end - offset < wire:
                break
            messages.append(buffer[offset : offset + size])
            offset += wire
        self._buffer = buffer[offset:] if offset else buffer
        return messages
