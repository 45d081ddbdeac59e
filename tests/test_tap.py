# -*- test-case-name: tests.test_tap -*-
"""
Tests for L{twisted_turn.tap} and the twistd plugin pointer.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import types
from typing import List

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn import tap
from twisted_turn.config import ConfigError, TurnConfig, makeConfig
from twisted_turn.tap import Options, makeService


def parse(*argv: str) -> TurnConfig:
    """
    The configuration C{twistd turn argv...} gives.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options.config


class CommandLineTests(SynchronousTestCase):
    """
    L{Options} parses coturn's command line.
    """

    def test_defaults(self) -> None:
        """
        No options give the default configuration.
        """
        self.assertEqual(parse(), TurnConfig())

    def test_longForms(self) -> None:
        """
        C{--name value} and C{--name=value} both work.
        """
        self.assertEqual(parse("--listening-port", "3479").listeningPort, 3479)
        self.assertEqual(parse("--listening-port=3480").listeningPort, 3480)

    def test_valueMayStartWithDash(self) -> None:
        """
        An option that needs a value takes the next argument even if it starts with C{-}.
        """
        self.assertEqual(parse("--static-auth-secret", "-x-").staticAuthSecrets, ("-x-",))

    def test_repeatedUser(self) -> None:
        """
        Repeated C{--user} and C{-u} accumulate in order.
        """
        config = parse("--user", "a:b", "--user=c:d", "-u", "e:f")
        self.assertEqual(config.users, (("a", "b"), ("c", "d"), ("e", "f")))

    def test_flags(self) -> None:
        """
        A flag is bare or carries an explicit value after C{=}.
        """
        self.assertEqual(parse("--udp-gso").udpGso, True)
        self.assertEqual(parse("--udp-gso=false").udpGso, False)
        self.assertEqual(parse("--udp-gso=Off", "--udp-gso").udpGso, True)
        self.assertIsNone(parse().udpGso)
        self.assertFalse(parse("--fingerprint", "--fingerprint=no").fingerprint)

    def test_flagDoesNotTakeNextArgument(self) -> None:
        """
        A flag's value comes only after C{=}: the next argument stays an argument.
        """
        e = self.assertRaises(usage.UsageError, parse, "--fingerprint", "no")
        self.assertEqual(str(e), "unexpected argument 'no': options only")

    def test_shortOptions(self) -> None:
        """
        Short letters take a value attached or as the next argument, and flags cluster.
        """
        config = parse("-p", "3479", "-r", "example.org", "-L127.0.0.1", "-fv", "-u", "a:b")
        self.assertEqual(
            (config.listeningPort, config.realm, config.listeningIps),
            (3479, "example.org", ("127.0.0.1",)),
        )
        self.assertEqual((config.fingerprint, config.verbose), (True, True))
        self.assertEqual(config.users, (("a", "b"),))

    def test_clusterEndsWithValue(self) -> None:
        """
        In a cluster, the first letter that takes a value takes the rest as its value.
        """
        config = parse("-fp3479")
        self.assertEqual((config.fingerprint, config.listeningPort), (True, 3479))

    def test_optionalValue(self) -> None:
        """
        C{--stale-nonce} alone means the default, and takes the next argument only when it is
        not an option.
        """
        self.assertEqual(parse("--stale-nonce=5", "--stale-nonce").staleNonce, 600)
        config = parse("--channel-lifetime", "--stale-nonce", "30")
        self.assertEqual((config.channelLifetime, config.staleNonce), (600, 30))

    def test_unknownOptions(self) -> None:
        """
        Unknown long and short options are usage errors naming them.
        """
        e = self.assertRaises(usage.UsageError, parse, "--frobnicate")
        self.assertEqual(str(e), "no such option: --frobnicate")
        e = self.assertRaises(usage.UsageError, parse, "-j")
        self.assertEqual(str(e), "no such option: -j")

    def test_coturnDockerCommandLine(self) -> None:
        """
        coturn's usual container command line, C{-n --log-file=stdout ...}, parses: C{-n} is
        recorded as a recognised option, C{stdout} as the log file (which the service treats
        as the standard output, not a file name).
        """
        config = parse("-n", "--log-file=stdout", "--realm=example.org", "-u", "a:b")
        self.assertIn("no-config-file", config.notImplemented)
        self.assertEqual(config.logFile, "stdout")

    def test_missingValue(self) -> None:
        """
        An option that needs a value, last on the line, is a usage error.
        """
        e = self.assertRaises(usage.UsageError, parse, "--realm")
        self.assertEqual(str(e), "--realm: needs a value")
        e = self.assertRaises(usage.UsageError, parse, "-c")
        self.assertEqual(str(e), "--config: needs a value")

    def test_positionalRefused(self) -> None:
        """
        Arguments that are not options are refused.
        """
        e = self.assertRaises(usage.UsageError, parse, "3478")
        self.assertEqual(str(e), "unexpected argument '3478': options only")

    def test_configErrorBecomesUsageError(self) -> None:
        """
        A bad value is a usage error with the L{twisted_turn.config.ConfigError} message.
        """
        e = self.assertRaises(usage.UsageError, parse, "--min-port", "70000")
        self.assertEqual(str(e), "--min-port: 70000 is not a port number (1-65535)")
        e = self.assertRaises(usage.UsageError, parse, "--use-auth-secret")
        self.assertIn("static-auth-secret", str(e))

    def test_notImplementedRecorded(self) -> None:
        """
        Options not served yet are accepted and recorded.
        """
        config = parse("--no-udp-relay", "--relay-threads", "4", "--oauth")
        self.assertEqual(config.notImplemented, ("no-udp-relay", "relay-threads", "oauth"))

    def test_sameAsMakeConfig(self) -> None:
        """
        The command line and L{makeConfig} give the same configuration for the same options.
        """
        self.assertEqual(
            parse("-X", "203.0.113.7/10.0.0.7", "--static-auth-secret", "s", "--nonce-secret",
                  "0x0102"),
            makeConfig(externalIps=["203.0.113.7/10.0.0.7"], staticAuthSecrets=["s"],
                       nonceSecret=b"\x01\x02"),
        )


class ConfigFileTests(SynchronousTestCase):
    """
    C{-c turnserver.conf} is read first; the command line wins over it.
    """

    def setUp(self) -> None:
        # Not self.mktemp(): under pytest that writes below the current directory.
        self.directory = FilePath(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory.path)

    def writeConfig(self, text: str, encoding: str = "utf-8") -> str:
        """
        Write C{text} to a new file.

        @return: its path.
        """
        path = self.directory.child("turnserver.conf")
        path.setContent(text.encode(encoding))
        return path.path

    def test_readFile(self) -> None:
        """
        Options come from the file named by C{-c} or C{--config}.
        """
        path = self.writeConfig("listening-port=3479\n# comment\nfingerprint\nuser=a:b\n")
        for argv in (["-c", path], ["--config", path], [f"--config={path}"]):
            config = parse(*argv)
            self.assertEqual(
                (config.listeningPort, config.fingerprint, config.users),
                (3479, True, (("a", "b"),)),
            )

    def test_commandLineWins(self) -> None:
        """
        Single values on the command line replace the file's, wherever C{-c} appears;
        repeatable ones add to the file's.
        """
        path = self.writeConfig("listening-port=3479\nuser=a:b\nverbose\n")
        config = parse("--listening-port", "3480", "-u", "c:d", "-c", path, "--verbose=no")
        self.assertEqual(config.listeningPort, 3480)
        self.assertEqual(config.users, (("a", "b"), ("c", "d")))
        self.assertFalse(config.verbose)

    def test_errorNamesFileAndLine(self) -> None:
        """
        An error in the file names the file, the line and the option.
        """
        path = self.writeConfig("realm=example.org\nfrobnicate=1\n")
        e = self.assertRaises(usage.UsageError, parse, "-c", path)
        self.assertEqual(str(e), f"{path} line 2: frobnicate: unknown option")

    def test_reloadConfigReadsTheFileAgain(self) -> None:
        """
        L{Options.reloadConfig} (what SIGHUP applies) reads the file again, with the same
        command line on top; a file gone bad raises L{ConfigError}.
        """
        path = self.writeConfig("max-bps=1000\nuser=a:b\n")
        options = Options()
        options.parseOptions(["-c", path, "--bps-capacity", "8000"])
        self.assertEqual((options.config.maxBps, options.config.bpsCapacity), (1000, 8000))
        self.writeConfig("max-bps=2000\nuser=a:b\n")
        reloaded = options.reloadConfig()
        self.assertEqual((reloaded.maxBps, reloaded.bpsCapacity), (2000, 8000))
        self.writeConfig("max-bps=lots\n")
        e = self.assertRaises(ConfigError, options.reloadConfig)
        self.assertEqual(str(e), f"{path} line 1: max-bps: lots is not an integer >= 0")
        FilePath(path).remove()
        e = self.assertRaises(ConfigError, options.reloadConfig)
        self.assertTrue(str(e).startswith(f"-c: cannot read {path}: "), str(e))

    def test_jsonLogFormat(self) -> None:
        """
        With --log-format json, twistd's application gets a JSON log observer (twistd then
        logs through it instead of its own text observer); by default it gets none.
        """
        from twisted.application.service import Application
        from twisted.logger import ILogObserver

        for argv, expected in ((["--user", "a:b"], False),
                               (["--user", "a:b", "--log-format", "json"], True)):
            options = Options()
            options.parseOptions(argv)
            application = Application("turn")
            makeService(options).setServiceParent(application)
            self.assertEqual(application.getComponent(ILogObserver, None) is not None, expected)
        e = self.assertRaises(usage.UsageError, parse, "--log-format", "xml")
        self.assertEqual(str(e), "--log-format: xml is not a log format: text or json")

    def test_missingFile(self) -> None:
        """
        A file that cannot be read is a usage error naming it.
        """
        path = self.directory.child("missing.conf").path
        e = self.assertRaises(usage.UsageError, parse, "-c", path)
        self.assertTrue(str(e).startswith(f"-c: cannot read {path}: "), str(e))

    def test_notUtf8(self) -> None:
        """
        A file that is not UTF-8 is a usage error.
        """
        path = self.writeConfig("realm=caf\xe9\n", encoding="latin-1")
        e = self.assertRaises(usage.UsageError, parse, "-c", path)
        self.assertEqual(str(e), f"-c: {path} is not UTF-8 text (byte 9)")

    def test_byteOrderMark(self) -> None:
        """
        A UTF-8 byte order mark is not part of the first key.
        """
        path = self.writeConfig("\ufefflistening-port=3479\n")
        self.assertEqual(parse("-c", path).listeningPort, 3479)


class HelpTests(SynchronousTestCase):
    """
    C{--help} and C{--version} print and exit.
    """

    def capture(self, *argv: str) -> str:
        """
        Parse C{argv}, which must exit.

        @return: what was printed.
        """
        output = io.StringIO()
        self.patch(sys, "stdout", output)
        self.assertRaises(SystemExit, parse, *argv)
        return output.getvalue()

    def test_helpListsOptions(self) -> None:
        """
        C{--help} lists the options with their help text and marks those not served yet.
        """
        text = self.capture("--listening-port", "3479", "--help")
        self.assertIn("-p, --listening-port=", text)
        self.assertIn("UDP and TCP port to listen", text)
        self.assertIn("[default: 3478]", text)
        self.assertIn("-c, --config=", text)
        self.assertIn("--udp-gso ", text)
        self.assertIn("Flush runs of equal", text)
        self.assertIn("(not served yet) MongoDB user", text)

    def test_version(self) -> None:
        """
        C{--version} names twisted-turn's and Twisted's versions.
        """
        from twisted import copyright

        from twisted_turn._version import __version__

        self.assertEqual(
            self.capture("--version"),
            f"twisted-turn {__version__} (Twisted {copyright.version})\n",
        )


class PluginTests(SynchronousTestCase):
    """
    twistd finds the C{turn} plugin.
    """

    def test_noInitInPluginsDirectory(self) -> None:
        """
        C{twisted/plugins} in this project has no C{__init__.py}, which would hide Twisted's own
        plugins.
        """
        root = FilePath(tap.__file__).parent().parent()
        plugins = root.child("twisted").child("plugins")
        self.assertTrue(plugins.child("twisted_turn_plugin.py").exists())
        self.assertFalse(plugins.child("__init__.py").exists())

    def test_getPlugins(self) -> None:
        """
        L{getPlugins} finds the C{turn} service maker, pointing at L{twisted_turn.tap}.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("turn", makers)
        self.assertEqual(makers["turn"].name, "twisted-turn")
        self.assertIs(makers["turn"].options, Options)

    def test_twistdCommandLine(self) -> None:
        """
        C{twistd -n turn ...} parses the plugin's options.
        """
        config = ServerOptions()
        config.parseOptions(["-n", "turn", "--listening-port", "3479", "--user", "a:b"])
        self.assertEqual(config.subCommand, "turn")
        self.assertEqual(config.subOptions.config.listeningPort, 3479)
        self.assertEqual(config.subOptions.config.users, (("a", "b"),))

    def test_twistdHelp(self) -> None:
        """
        C{twistd turn --help} lists the options.
        """
        output = io.StringIO()
        self.patch(sys, "stdout", output)
        self.assertRaises(SystemExit, ServerOptions().parseOptions, ["turn", "--help"])
        self.assertIn("--listening-port=", output.getvalue())
        self.assertIn("twistd [options] turn [options]", output.getvalue())


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} hands the parsed configuration to L{twisted_turn.service.TurnService}.
    """

    def restoreModule(self, previous: object) -> None:
        """
        Put back the real L{twisted_turn.service} module, or its absence.
        """
        if previous is None:
            del sys.modules["twisted_turn.service"]
        else:
            sys.modules["twisted_turn.service"] = previous  # type: ignore[assignment]

    def test_makeService(self) -> None:
        """
        The service is built from C{options.config} and the given reactor, exits with one
        line on a start-up error, and reloads its certificate on SIGHUP.
        """
        calls: List[tuple] = []

        class FakeTurnService:
            def __init__(self, config: TurnConfig, reactor: object = None) -> None:
                calls.append((config, reactor))

        fake = types.ModuleType("twisted_turn.service")
        fake.TurnService = FakeTurnService  # type: ignore[attr-defined]
        previous = sys.modules.get("twisted_turn.service")
        sys.modules["twisted_turn.service"] = fake
        self.addCleanup(self.restoreModule, previous)
        options = Options()
        options.parseOptions(["-p", "3479"])
        reactor = object()
        service = makeService(options, reactor=reactor)
        self.assertIsInstance(service, FakeTurnService)
        self.assertEqual(calls, [(options.config, reactor)])
        self.assertEqual(calls[0][0].listeningPort, 3479)
        self.assertTrue(service.exitOnStartupError)
        self.assertTrue(service.reloadOnSighup)

