"""
Packaging: the wheel carries the package, its STUN codec and the twistd plugin (in
twisted/plugins, without an __init__.py), and nothing of the tests.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.integration.harness import REPO_ROOT

pytestmark = pytest.mark.integration


def test_wheelContents(tmp_path):
    """
    C{pip wheel .} builds a wheel with the modules, the native module compiled by cffi, the
    plugin pointers (the C{turn} service and the C{turnepoll} reactor), the status page's
    files, and no
    C{twisted/plugins/__init__.py} (which would hide Twisted's own plugins).
    """
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO_ROOT)],
        check=True, stdin=subprocess.DEVNULL, timeout=300,
    )
    [wheel] = tmp_path.glob("twisted_turn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "twisted/plugins/twisted_turn_plugin.py",
        "twisted/plugins/twisted_turn_reactors.py",
        "twisted_turn/udp.py",
        "twisted_turn/_native.py",
        "twisted_turn/bench/__init__.py",
        "twisted_turn/__init__.py",
        "twisted_turn/server.py",
        "twisted_turn/stun/message.py",
        "twisted_turn/stun/attributes.py",
        "twisted_turn/admin/api.py",
        # The status page's own files: it loads nothing from elsewhere.
        "twisted_turn/admin/static/index.html",
        "twisted_turn/admin/static/app.js",
        "twisted_turn/admin/static/style.css",
    ]:
        assert expected in names, sorted(names)
    assert [name for name in names if name.startswith("twisted_turn/_turnio.")], sorted(names)
    assert "twisted/plugins/__init__.py" not in names
    assert "twisted/__init__.py" not in names
    assert not [name for name in names if name.startswith("tests/")]
