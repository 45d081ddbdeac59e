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


class RefusalLogTests(SynchronousTestCase):
    """
    Tests for L{twisted_turn._log.RefusalLog}.
    """

    def setUp(self):
        from twisted.internet.task import Clock

        from twisted_turn._log import RefusalLog

        self.clock = Clock()
        self.refusals = RefusalLog(makeLogger("twisted_turn.example"), self.clock,
                                   burst=3, interval=10.0)

    def refuse(self, kind, count):
        from twisted.logger import formatEvent

        with capturedLogs() as events:
            for number in range(count):
                self.refusals.refused(kind, "refused {n}", n=number)
        return [formatEvent(event) for event in events]

    def test_burstThenInterval(self):
        """
        A kind gets C{burst} lines at once, then one per C{interval}; the next line says how
        many were left out, at info.
        """
        self.assertEqual(self.refuse(403, 100), ["refused 0", "refused 1", "refused 2"])
        self.clock.advance(10)
        self.assertEqual(self.refuse(403, 5), ["refused 0 (97 similar refusals not logged)"])

    def test_kindsApart(self):
        """
        Each kind has its own share: a flood of one leaves the others logged.
        """
        self.refuse(401, 100)
        self.assertEqual(self.refuse(486, 1), ["refused 0"])

    def test_atInfo(self):
        """
        Refusals are info events (seen without --verbose), with the kind as a field.
        """
        with capturedLogs() as events:
            self.refusals.refused(508, "no port")
        [event] = events
        self.assertEqual((event["log_level"], event["refusal"]), (LogLevel.info, 508))
