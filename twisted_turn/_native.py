# -*- test-case-name: tests.test_native -*-
"""
The import policy of the native backend, C{twisted_turn._turnio}.

C{TWISTED_TURN_NATIVE} chooses it: C{auto} (the default) uses the module when it imports and
otherwise runs on Twisted's stock UDP port; C{off} never uses it; C{require} makes a missing
module an error at start-up.  This follows python-zstandard's backend policy.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Tuple

POLICY_VARIABLE = "TWISTED_TURN_NATIVE"
POLICIES = ("auto", "off", "require")


class NativeUnavailable(Exception):
    """
    The policy is C{require} and the native module cannot be used, or the policy is not one of
    L{POLICIES}.
    """


def _importModule() -> Any:
    from twisted_turn import _turnio

    return _turnio


def loadNative(
    environ: Optional[Mapping[str, str]] = None, importModule: Any = None
) -> Tuple[Optional[Any], str]:
    """
    Apply the policy in C{environ} (by default C{os.environ}).

    @return: C{(module, "")} when the native module is to be used, else C{(None, reason)}
        with the reason in words for the one log line that says so.
    @raise NativeUnavailable: the policy is C{require} and the module does not import, or the
        policy is misspelt.
    """
    if environ is None:
        environ = os.environ
    if importModule is None:
        importModule = _importModule
    policy = environ.get(POLICY_VARIABLE, "auto").strip().lower() or "auto"
    if policy not in POLICIES:
        raise NativeUnavailable(
            f"{POLICY_VARIABLE}={policy!r} is not a policy: use one of {', '.join(POLICIES)}"
        )
    if policy == "off":
        return None, f"{POLICY_VARIABLE}=off"
    try:
        module = importModule()
    except ImportError as e:
        if policy == "require":
            raise NativeUnavailable(
                f"{POLICY_VARIABLE}=require, but the native module twisted_turn._turnio "
                f"cannot be imported ({e}); it is built by 'pip install .' on Linux with a C "
                "compiler"
            ) from None
        return None, f"the native module twisted_turn._turnio is not available ({e})"
    return module, ""
