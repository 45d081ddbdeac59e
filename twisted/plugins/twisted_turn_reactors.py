# -*- test-case-name: tests.test_pollscope -*-
"""
The twistd reactor pointer: C{twistd -r turnepoll}.  Nothing else belongs here, because twistd
imports every module in this directory whenever it looks for plugins.
"""

from twisted.application.reactors import Reactor

turnepoll = Reactor(
    "turnepoll",
    "twisted_turn.pollscope",
    "epoll with one UDP batch scope per poll iteration (twisted-turn)",
)
