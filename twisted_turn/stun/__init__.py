# -*- test-case-name: tests.test_stun_message -*-
"""
A sans-I/O codec for STUN (RFC 8489) and TURN (RFC 8656) messages and ChannelData.

L{twisted_turn.stun.message} decodes and encodes messages, L{twisted_turn.stun.attributes} holds
the typed attributes, L{twisted_turn.stun.integrity} checks MESSAGE-INTEGRITY(-SHA256) and
FINGERPRINT, and L{twisted_turn.stun.channeldata} frames ChannelData.  Decoders raise only
L{twisted_turn.stun.message.StunDecodeError}.
"""
