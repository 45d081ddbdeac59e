"""
The test suite runs the checkout (pytest puts the project root first on C{sys.path}, and the
integration tests start twistd with it on C{PYTHONPATH}), so the checkout needs its own build of
the native module: it is compiled in place before the tests when it is missing or older than
its C sources.  Without a compiler the native tests skip, except under CI where they fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _nativeIsStale() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    built = list((ROOT / "twisted_turn").glob("_turnio*.so"))
    if not built:
        return True
    sources = [*(ROOT / "native").iterdir(), ROOT / "setup.py"]
    return max(p.stat().st_mtime for p in sources) > min(p.stat().st_mtime for p in built)


def pytest_sessionstart(session) -> None:
    if _nativeIsStale():
        result = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        )
        if result.returncode:
            sys.stderr.write(
                "Could not build the native module in place; its tests will skip (or fail "
                f"under CI):\n{result.stdout}{result.stderr}\n"
            )
