# -*- test-case-name: tests.test_pollscope -*-
"""
An opt-in reactor whose batch scope spans a whole poll iteration: C{twistd -r turnepoll turn}.

With the default reactor each batching port's C{doRead} is its own scope, so the Data
indications that many relay sockets send back to one client-facing listener go out in one flush
per relay socket.  Here every descriptor that one C{epoll_wait} made ready is read inside one
scope, so writes from all of them to the listener coalesce into one flush.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.epollreactor import EPollReactor

from twisted_turn.udp import batch


class PollScopeReactor(EPollReactor):
    """
    L{EPollReactor} with each poll iteration wrapped in L{twisted_turn.udp.batch}.
    """

    def doPoll(self, timeout: Optional[float]) -> None:
        batch.begin()
        try:
            EPollReactor.doPoll(self, timeout)
        finally:
            batch.end()

    doIteration = doPoll


def install() -> Any:
    """
    Install L{PollScopeReactor} as the global reactor (what C{twistd -r turnepoll} calls).
    """
    from twisted.internet.main import installReactor

    reactor = PollScopeReactor()
    installReactor(reactor)
    return reactor
