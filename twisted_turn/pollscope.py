# -*- test-case-name: tests.test_pollscope -*-
"""
An opt-in reactor whose batch scope spans a whole poll iteration: C{twistd -r turnepoll turn}.

With the default reactor each batching port's C{doRead} is its own scope, so the Data
indications that many relay sockets send back to one client-facing listener go out in one flush
per relay socket.  Here every descriptor that one C{epoll_wait} made ready is read inside one
scope, so writes from all of them to the listener coalesce into one flush.

It also reads batching ports without Twisted's per-event log context (C{callWithLogger}): with
many relay sockets each carrying a datagram or two per wakeup, that context costs as much as
the relaying, and a batching port neither raises out of C{doRead} nor logs per datagram.
"""

from __future__ import annotations

import errno
import select
from typing import Any, Optional

from twisted.internet.epollreactor import EPollReactor
from twisted.python import log

from twisted_turn._log import makeLogger, worthLogging
from twisted_turn.udp import BatchingPort, batch

_log = makeLogger(__name__)


class PollScopeReactor(EPollReactor):
    """
    L{EPollReactor} with each poll iteration's events handled inside L{twisted_turn.udp.batch}.

    @ivar escapedErrors: exceptions that escaped a batching port's C{doRead}.
    """

    escapedErrors = 0

    def doPoll(self, timeout: Optional[float]) -> None:
        try:
            events = self._poller.poll(-1 if timeout is None else timeout,
                                       len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        if not events:
            return
        selectables = self._selectables
        dispatch = self._doReadOrWrite
        batch.begin()
        try:
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                if event == select.EPOLLIN and selectable.__class__ is BatchingPort:
                    try:
                        selectable.doRead()
                    except Exception:
                        # doRead contains its own errors; should one escape anyway, the port
                        # stays open (it may be the listener every client uses), and the log
                        # gets the first few and then every thousandth.
                        self.escapedErrors += 1
                        if worthLogging(self.escapedErrors):
                            _log.failure("Unexpected error reading {port} ({count} so far)",
                                         port=selectable, count=self.escapedErrors)
                else:
                    log.callWithLogger(selectable, dispatch, selectable, fd, event)
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
