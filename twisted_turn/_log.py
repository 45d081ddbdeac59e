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
