# -*- test-case-name: tests.test_init -*-
"""
twisted-turn: a TURN (RFC 8656) and STUN (RFC 8489) server on Twisted.

The public API: L{TurnService} (run the server inside a Twisted application), L{TurnConfig} and
L{makeConfig} (its options), and L{restCredentials} (hand out TURN REST API credentials).
Imports are lazy so that the sans-I/O core loads without Twisted's networking.
"""

from twisted_turn._version import __version__

_PUBLIC = {
    "TurnService": "twisted_turn.service",
    "TurnConfig": "twisted_turn.config",
    "makeConfig": "twisted_turn.config",
    "restCredentials": "twisted_turn.auth",
    "makeService": "twisted_turn.tap",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'twisted_turn' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
