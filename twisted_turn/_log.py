# -*- test-case-name: tests.test_log -*-
"""
One log observer for the whole package, so that debug events (allocations, failed logins, with
client addresses) reach the log only with C{--verbose}, whatever observer the application or
twistd installed.  Modules make their loggers with L{makeLogger}.
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)


def _forward(event: dict) -> None:
    # Looked up at each event, not bound once, so that tests capturing the global publisher
    # (which replace its observers) still see our events.
    globalLogPublisher(event)


_observer = FilteringLogObserver(_forward, [_predicate])


def makeLogger(namespace: str) -> Logger:
    """
    A L{Logger} for module C{namespace} whose events pass the package's level filter.
    """
    return Logger(namespace=namespace, observer=_observer)


def setVerbose(verbose: bool) -> None:
    """
    Let debug events through (C{--verbose}) or stop them (the default).
    """
    _predicate.setLogLevelForNamespace(
        "twisted_turn", LogLevel.debug if verbose else LogLevel.info
    )


def worthLogging(count: int) -> bool:
    """
    Whether the C{count}-th occurrence of something a client can repeat at will should be
    logged: the first ten, then every thousandth, so the log shows it without being flooded.
    """
    return count <= 10 or count % 1000 == 0


class RefusalLog:
    """
    Logs refused requests at info, as coturn does (it is how operators find abusers), bounded
    per reason so that a flood cannot fill the disk: at most C{burst} lines at once per
    reason, then one every C{interval} seconds; the next line logged says how many were left
    out meanwhile.  Memory is one entry per reason, a fixed set.
    """

    def __init__(self, logger: Logger, clock: object, burst: int = 10,
                 interval: float = 6.0) -> None:
        self._log = logger
        self._clock = clock
        self._burst = float(burst)
        self._interval = interval
        #: reason to [tokens, last refill time, lines left out since the last one logged]
        self._state: dict = {}

    def refused(self, kind: object, message: str, **fields: object) -> None:
        """
        Log C{message} (a L{twisted.logger} format with C{fields}) for a refusal of C{kind},
        unless this kind used up its share; C{omitted} and C{refusal} (the kind) are added to
        the fields.
        """
        now = self._clock.seconds()  # type: ignore[attr-defined]
        state = self._state.get(kind)
        if state is None:
            state = self._state[kind] = [self._burst, now, 0]
        state[0] = min(self._burst, state[0] + (now - state[1]) / self._interval)
        state[1] = now
        if state[0] < 1.0:
            state[2] += 1
            return
        state[0] -= 1.0
        omitted, state[2] = state[2], 0
        suffix = " ({omitted} similar refusals not logged)" if omitted else ""
        self._log.info(message + suffix, omitted=omitted, refusal=kind, **fields)
