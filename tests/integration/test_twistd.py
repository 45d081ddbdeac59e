# -*- test-case-name: tests.integration.test_twistd -*-
"""
The C{turn} plugin as twistd finds it.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.harness import REPO_ROOT, TOOL_TIMEOUT, TWISTD, checkoutEnvironment

pytestmark = pytest.mark.integration


def twistd(*args: str) -> str:
    env = checkoutEnvironment()
    completed = subprocess.run(
        [*TWISTD, *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=TOOL_TIMEOUT,
    )
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output
    return output


def test_pluginListed() -> None:
    """
    twistd lists a C{turn} command.
    """
    assert any(line.split()[:1] == ["turn"] for line in twistd("--help").splitlines())


def test_pluginHelpUsesCoturnNames() -> None:
    """
    C{twistd turn --help} documents the options under coturn's names.
    """
    output = twistd("turn", "--help")
    for option in ("--listening-port", "--relay-ip", "--static-auth-secret", "--no-auth"):
        assert option in output, output
