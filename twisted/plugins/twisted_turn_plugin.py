# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin pointer: C{twistd turn}. Nothing else belongs here, because twistd imports
every module in this directory whenever it looks for plugins.
"""

from __future__ import annotations

from twisted.application.service import ServiceMaker

turn = ServiceMaker(
    "twisted-turn",
    "twisted_turn.tap",
    "A TURN (RFC 8656) and STUN (RFC 8489) server with coturn's options.",
    "turn",
)
