"""
Tests for L{twisted_turn._log}: debug events pass only when verbose.
"""

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn._log import makeLogger, setVerbose


class LevelFilterTests(SynchronousTestCase):
    def setUp(self):
        self.addCleanup(setVerbose, False)
        self.log = makeLogger("twisted_turn.example")

    def emitBoth(self):
        with capturedLogs() as events:
            self.log.debug("quiet {n}", n=1)
            self.log.info("loud {n}", n=2)
        return [(e["log_level"], e["log_namespace"]) for e in events]

    def test_debugDroppedByDefault(self):
        """
        Without verbose, debug events are dropped and info events pass, in the module's
        namespace.
        """
        setVerbose(False)
        self.assertEqual(self.emitBoth(), [(LogLevel.info, "twisted_turn.example")])

    def test_verbosePassesDebug(self):
        """
        With verbose, debug events pass too.
        """
        setVerbose(True)
        self.assertEqual(
            self.emitBoth(),
            [(LogLevel.debug, "twisted_turn.example"), (LogLevel.info, "twisted_turn.example")],
        )
