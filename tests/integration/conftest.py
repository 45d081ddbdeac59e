# -*- test-case-name: tests.integration -*-
"""
Fixtures for the integration tests: real C{twistd turn} servers and coturn's echo peer, always
stopped at teardown. Their logs are printed at teardown, which pytest shows only for a failed
test.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import pytest

from tests.integration.harness import SniffingProxy, TurnServerProcess, UdpEchoPeer


@pytest.fixture
def turnServer(tmp_path) -> Callable[..., TurnServerProcess]:
    """
    A factory: C{turnServer(*options)} starts C{twistd -n turn} with C{options} after the
    listening, relay and realm options, and returns once it answers STUN.
    """
    servers: List[TurnServerProcess] = []

    def start(
        *options: str, twistdArgs: Sequence[str] = (), environment: Optional[dict] = None
    ) -> TurnServerProcess:
        server = TurnServerProcess(
            tmp_path / f"turn-{len(servers)}.log", options, twistdArgs, environment
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        print(f"--- {' '.join(server.command)} (exit {server.process.returncode})")
        print(server.log())


@pytest.fixture
def echoPeer(tmp_path) -> UdpEchoPeer:
    """
    C{turnutils_peer} echoing UDP on 127.0.0.1.
    """
    peer = UdpEchoPeer(tmp_path / "peer.log")
    yield peer
    peer.stop()


@pytest.fixture
def sniffingProxy() -> Callable[[int], SniffingProxy]:
    """
    A factory: C{sniffingProxy(serverPort)} puts a L{SniffingProxy} in front of a server.
    """
    proxies: List[SniffingProxy] = []

    def start(serverPort: int) -> SniffingProxy:
        proxy = SniffingProxy(serverPort)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
