"""
Tests for the package's public API in L{twisted_turn}.
"""

from twisted.trial.unittest import SynchronousTestCase

import twisted_turn


class PublicAPITests(SynchronousTestCase):
    def test_publicNames(self):
        """
        Every name in C{__all__} resolves, to the object of the module that defines it.
        """
        from twisted_turn.auth import restCredentials
        from twisted_turn.config import TurnConfig, makeConfig
        from twisted_turn.service import TurnService
        from twisted_turn.tap import makeService

        self.assertIs(twisted_turn.TurnService, TurnService)
        self.assertIs(twisted_turn.TurnConfig, TurnConfig)
        self.assertIs(twisted_turn.makeConfig, makeConfig)
        self.assertIs(twisted_turn.restCredentials, restCredentials)
        self.assertIs(twisted_turn.makeService, makeService)
        for name in twisted_turn.__all__:
            self.assertIsNotNone(getattr(twisted_turn, name))
        self.assertRegex(twisted_turn.__version__, r"^\d+\.\d+")

    def test_unknownName(self):
        """
        Other names raise L{AttributeError} naming them.
        """
        error = self.assertRaises(AttributeError, getattr, twisted_turn, "Frobnicator")
        self.assertIn("Frobnicator", str(error))
