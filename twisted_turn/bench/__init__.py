# -*- test-case-name: tests.test_bench -*-
"""
The relay benchmark of twisted-turn: C{python -m twisted_turn.bench} (docs/benchmark.md).

The TURN control plane (Allocate, CreatePermission, ChannelBind with long-term credentials) is
Python on the project's own STUN codec (L{twisted_turn.bench.client}); the data plane, a
ChannelData load generator and a UDP echo peer, is C in the native module
(native/turnbench.c, wrapped by L{twisted_turn.bench.load}), so that the load side is not the
bottleneck.  L{twisted_turn.bench.servers} starts the servers under test,
L{twisted_turn.bench.runner} runs the rounds and L{twisted_turn.bench.stats} summarizes them.
"""
