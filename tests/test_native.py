# -*- test-case-name: tests.test_native -*-
"""
Tests for L{twisted_turn._native}: the TWISTED_TURN_NATIVE import policy.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn._native import NativeUnavailable, loadNative


def missing() -> None:
    raise ImportError("No module named 'twisted_turn._turnio'")


class PolicyTests(SynchronousTestCase):
    """
    C{auto}, C{off} and C{require}, with the module present and missing.
    """

    module = object()

    def present(self) -> object:
        return self.module

    def test_autoUsesModule(self) -> None:
        """
        By default (and with C{auto}) the module is used when it imports.
        """
        self.assertEqual(loadNative({}, self.present), (self.module, ""))
        self.assertEqual(
            loadNative({"TWISTED_TURN_NATIVE": " Auto "}, self.present), (self.module, "")
        )

    def test_autoFallsBack(self) -> None:
        """
        With C{auto} a missing module means the stock port, with the reason.
        """
        module, reason = loadNative({}, missing)
        self.assertIsNone(module)
        self.assertIn("twisted_turn._turnio is not available", reason)

    def test_off(self) -> None:
        """
        C{off} never imports the module.
        """
        module, reason = loadNative({"TWISTED_TURN_NATIVE": "off"}, missing)
        self.assertEqual((module, reason), (None, "TWISTED_TURN_NATIVE=off"))

    def test_require(self) -> None:
        """
        C{require} with a missing module is an error that says how the module is built.
        """
        self.assertEqual(
            loadNative({"TWISTED_TURN_NATIVE": "require"}, self.present), (self.module, "")
        )
        e = self.assertRaises(
            NativeUnavailable, loadNative, {"TWISTED_TURN_NATIVE": "require"}, missing
        )
        self.assertIn("TWISTED_TURN_NATIVE=require", str(e))
        self.assertIn("pip install .", str(e))

    def test_misspelt(self) -> None:
        """
        An unknown policy is an error naming the variable and the choices.
        """
        e = self.assertRaises(NativeUnavailable, loadNative, {"TWISTED_TURN_NATIVE": "yes"})
        self.assertEqual(
            str(e), "TWISTED_TURN_NATIVE='yes' is not a policy: use one of auto, off, require"
        )

    def test_builtHere(self) -> None:
        """
        In this checkout (built by C{pip install .} or C{setup.py build_ext --inplace}) the
        real module imports; under CI a missing module is a failure, not a skip.
        """
        module, reason = loadNative({})
        if module is None and not os.environ.get("CI"):
            self.skipTest(reason)
        self.assertIsNotNone(module, reason)
        self.assertTrue(module.lib.tt_gso_compiled())
