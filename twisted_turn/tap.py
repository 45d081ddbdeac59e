# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin's options and service: C{twistd -n turn [options]}.

The options are coturn's (see L{twisted_turn.config.OPTIONS}), parsed by hand rather than by
getopt because coturn's flags take an optional value (C{--udp-gso=false}) and its repeatable
options (C{--user}) must keep every occurrence in order.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence, Tuple

from twisted import copyright
from twisted.python import usage

from twisted_turn._version import __version__
from twisted_turn.config import (
    OPTIONS,
    OPTIONS_BY_NAME,
    ConfigError,
    Option,
    TurnConfig,
    configFromPairs,
    parseConfigFile,
)

__all__ = ["Options", "makeService"]

_DEFAULT_CONFIG = TurnConfig()


def _helpText(option: Option) -> str:
    text = option.help if option.served else "(not served yet) " + option.help
    default = None if option.field is None else getattr(_DEFAULT_CONFIG, option.field)
    # Only defaults worth reading: not "off", "none" or an empty list.
    if option.kind != "flag" and default not in (None, ()):
        text += f" [default: {default}]"
    return text


_SHORT_NAMES = {option.short: option.name for option in OPTIONS if option.short}
_SHORT_NAMES["c"] = "config"
_SHORT_NAMES["h"] = "help"


def _readConfigFile(path: str) -> str:
    try:
        # utf-8-sig: a byte order mark left by a Windows editor is not part of the first key.
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except OSError as e:
        raise ConfigError("-c", f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError("-c", f"{path} is not UTF-8 text (byte {e.start})") from None


class Options(usage.Options):
    """
    C{twistd turn} options: every option of L{twisted_turn.config.OPTIONS} by its coturn long
    name and short letter, plus C{-c}/C{--config} for a C{turnserver.conf} read first.

    After L{parseOptions}, L{config} holds the resulting L{TurnConfig}; the dictionary entries
    of the options themselves are not filled in.

    @ivar config: the validated configuration.
    """

    synopsis = "[options]"
    longdesc = (
        "Runs a TURN (RFC 8656) and STUN (RFC 8489) server. Options have coturn's names; -c reads "
        "a turnserver.conf first and the command line wins over it. Flags also take a value, "
        "as in --udp-gso=false. Options marked (not served yet) are accepted and warned about."
    )
    optParameters = [["config", "c", None, "Read options from this turnserver.conf first."]] + [
        [option.name, option.short, None, _helpText(option)]
        for option in OPTIONS
        if option.kind != "flag"
    ]
    optFlags = [
        [option.name, option.short, _helpText(option)]
        for option in OPTIONS
        if option.kind == "flag"
    ]

    config: TurnConfig

    def __init__(self) -> None:
        super().__init__()
        self._pairs: List[Tuple[str, Optional[str], None]] = []

    def opt_version(self) -> None:
        """
        Display the twisted-turn and Twisted versions and exit.
        """
        print(f"twisted-turn {__version__} (Twisted {copyright.version})")
        sys.exit(0)

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        """
        Parse the command line: C{--name value}, C{--name=value}, C{-x value}, C{-xvalue},
        clustered short flags (C{-fv}), bare flags or flags with an explicit value
        (C{--udp-gso=false}). Positional arguments are refused. Then L{postOptions}.

        @raise usage.UsageError: an unknown option, a missing value, or any L{ConfigError}.
        """
        arguments = list(sys.argv[1:] if options is None else options)
        while arguments:
            argument = arguments.pop(0)
            if argument.startswith("--"):
                name, equals, value = argument[2:].partition("=")
                self._takeOption(name, value if equals else None, arguments)
            elif argument.startswith("-") and len(argument) > 1:
                letters = argument[1:]
                while letters:
                    name = _SHORT_NAMES.get(letters[0])
                    if name is None:
                        raise usage.UsageError(f"no such option: -{letters[0]}")
                    letters = letters[1:]
                    if name == "help":
                        self.opt_help()
                    if name == "config" or OPTIONS_BY_NAME[name].kind != "flag":
                        # The rest of the cluster is the value: -p3478.
                        self._takeOption(name, letters or None, arguments)
                        break
                    self._takeOption(name, None, arguments)
            else:
                raise usage.UsageError(f"unexpected argument {argument!r}: options only")
        self.postOptions()

    def _takeOption(self, name: str, value: Optional[str], arguments: List[str]) -> None:
        """
        Record one option, taking its value from C{arguments} when it needs one and has none.
        """
        if name in ("help", "version"):
            getattr(self, "opt_" + name)()
        option = OPTIONS_BY_NAME.get(name)
        if option is None and name != "config":
            raise usage.UsageError(f"no such option: --{name}")
        if value is None and (option is None or option.kind != "flag"):
            optional = option is not None and option.valueOptional
            # A bare optional-value option only takes the next word when it is not an option.
            if arguments and not (optional and arguments[0].startswith("-")):
                value = arguments.pop(0)
            elif not optional:
                raise usage.UsageError(f"--{name}: needs a value")
        if option is None:
            self["config"] = value
        else:
            self._pairs.append((name, value, None))

    def postOptions(self) -> None:
        """
        Build L{config}: the config file's options first, then the command line's.

        @raise usage.UsageError: the file cannot be read, or a L{ConfigError} (same message).
        """
        try:
            self.config = self._load()
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def _load(self) -> TurnConfig:
        path = self["config"]
        if path is None:
            return configFromPairs(self._pairs)
        filePairs = parseConfigFile(_readConfigFile(path), filename=path)
        return configFromPairs(filePairs + self._pairs, filename=path)

    def reloadConfig(self) -> TurnConfig:
        """
        The configuration as it is now: the -c file read again, then the same command line
        (what SIGHUP applies).

        @raise ConfigError: the file cannot be read or holds a bad option.
        """
        return self._load()


def makeService(options: Options, reactor: object = None):  # type: ignore[no-untyped-def]
    """
    The twistd entry point: a L{twisted_turn.service.TurnService} for C{options.config}.

    @param reactor: the reactor to run on; L{None} for the global one.
    """
    # Imported here so the options can be parsed (and tested) without the server modules.
    from twisted_turn.service import TurnService

    service = TurnService(options.config, reactor=reactor)
    service.exitOnStartupError = True
    service.reloadOnSighup = True
    service.stopWhenDrained = True
    service.configLoader = options.reloadConfig
    if options.config.logFormat == "json":
        from twisted.logger import jsonFileLogObserver

        # One JSON event a line on standard output, where systemd and container runtimes
        # collect it, instead of twistd's text.
        service.applicationLogObserver = jsonFileLogObserver(sys.stdout, recordSeparator="")
    return service
