# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's arithmetic: what one measured round yields, the median with min and max over
rounds, the ratios between variants, and the plain-text table.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = [
    "METRICS",
    "RoundResult",
    "Summary",
    "formatTable",
    "pairedRatios",
    "summarize",
    "summarizeVariant",
]


@dataclass(frozen=True)
class Summary:
    """
    The median of some rounds, with the smallest and largest value and how many there were.
    """

    median: float
    min: float
    max: float
    count: int

    def asDict(self) -> Dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max, "count": self.count}


def summarize(values: Iterable[Optional[float]]) -> Optional[Summary]:
    """
    @param values: one value per round; L{None} (nothing to measure in that round) is skipped.
    @return: their median (of an even count, the mean of the middle two), min and max; L{None}
        when there are no values.
    """
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return Summary(statistics.median(present), min(present), max(present), len(present))


@dataclass
class RoundResult:
    """
    One variant under one load for one round.

    The rates are taken over the measured window: from a short ramp after the generator
    started sending to just before it stopped, so that start-up and the drain stay out.  Loss
    and round-trip times are the generator's totals over the whole run, drain included.

    @ivar window: seconds measured.
    @ivar uplink: datagrams the echo peer received in the window (relayed by the server from
        the clients).
    @ivar downlink: datagrams the generator received in the window (relayed by the server from
        the peer).
    @ivar serverCpu: CPU seconds the server used in the window (user + system, all threads).
    @ivar loadCpu: CPU seconds the benchmark process (generator and peer) used in the window.
    @ivar generator: the generator's L{twisted_turn.bench.load.LoadResult} as a dict.
    @ivar serverDrops: datagrams the kernel dropped at the server's sockets during the whole
        run (full receive buffers): loss the server caused by not reading fast enough.
    @ivar loadDrops: the same at the generator's and the echo peer's sockets.
    """

    variant: str
    load: str
    round: int
    window: float
    uplink: int
    downlink: int
    serverCpu: float
    loadCpu: float
    generator: Dict[str, Any]
    serverDrops: int = 0
    loadDrops: int = 0

    @property
    def forwarded(self) -> int:
        return self.uplink + self.downlink

    @property
    def forwardedPerSecond(self) -> float:
        return self.forwarded / self.window if self.window > 0 else 0.0

    @property
    def cpuPerSecond(self) -> float:
        return self.serverCpu / self.window if self.window > 0 else 0.0

    @property
    def perCpuSecond(self) -> Optional[float]:
        """
        Datagrams forwarded per second of server CPU; L{None} when the server used none that
        the kernel accounted (the clock tick is 10 ms).
        """
        return self.forwarded / self.serverCpu if self.serverCpu > 0 else None

    @property
    def loadCpuPerSecond(self) -> float:
        return self.loadCpu / self.window if self.window > 0 else 0.0

    @property
    def loss(self) -> float:
        sent = self.generator["sent"]
        return max(0, sent - self.generator["received"]) / sent if sent else 0.0

    @property
    def rttMedianUs(self) -> Optional[float]:
        return self.generator["rttMedianNs"] / 1e3 if self.generator["rttCount"] else None

    @property
    def rttP99Us(self) -> Optional[float]:
        return self.generator["rttP99Ns"] / 1e3 if self.generator["rttCount"] else None

    def asDict(self) -> Dict[str, Any]:
        return {
            "variant": self.variant,
            "load": self.load,
            "round": self.round,
            "window": self.window,
            "uplink": self.uplink,
            "downlink": self.downlink,
            "serverCpu": self.serverCpu,
            "loadCpu": self.loadCpu,
            "forwardedPerSecond": self.forwardedPerSecond,
            "cpuPerSecond": self.cpuPerSecond,
            "perCpuSecond": self.perCpuSecond,
            "loadCpuPerSecond": self.loadCpuPerSecond,
            "loss": self.loss,
            "rttMedianUs": self.rttMedianUs,
            "rttP99Us": self.rttP99Us,
            "serverDrops": self.serverDrops,
            "loadDrops": self.loadDrops,
            "generator": self.generator,
        }


#: The per-round metrics summarized for each variant: attribute name, column title.
METRICS = (
    ("forwardedPerSecond", "fwd/s"),
    ("cpuPerSecond", "srv cpu/s"),
    ("perCpuSecond", "fwd/cpu-s"),
    ("loss", "loss %"),
    ("rttMedianUs", "rtt p50 us"),
    ("rttP99Us", "rtt p99 us"),
)


def pairedRatios(
    rounds: Sequence[RoundResult], reference: Sequence[RoundResult]
) -> List[Optional[float]]:
    """
    The ratio of datagrams per server CPU-second of each round to the reference variant's
    round of the same number: rounds alternate variants, so a pair ran side by side, under
    the same background noise.

    @return: one ratio per round present in both; L{None} where either value is missing.
    """
    byRound = {r.round: r.perCpuSecond for r in reference}
    ratios: List[Optional[float]] = []
    for r in rounds:
        if r.round not in byRound:
            continue
        mine, theirs = r.perCpuSecond, byRound[r.round]
        ratios.append(mine / theirs if mine is not None and theirs else None)
    return ratios


def summarizeVariant(
    rounds: Sequence[RoundResult],
    stock: Optional[Sequence[RoundResult]] = None,
    coturn: Optional[Sequence[RoundResult]] = None,
) -> Dict[str, Optional[Summary]]:
    """
    Summarize one variant's measured rounds of one load.

    @param stock: the C{stock} variant's rounds of the same load, for the C{xStock} ratio.
    @param coturn: C{coturn}'s, for C{xCoturn}.
    @return: a L{Summary} (or L{None}) per metric name of L{METRICS}, plus C{loadCpuPerSecond},
        C{xStock} and C{xCoturn}.
    """
    summary: Dict[str, Optional[Summary]] = {
        name: summarize(getattr(r, name) for r in rounds) for name, _ in METRICS
    }
    summary["loadCpuPerSecond"] = summarize(r.loadCpuPerSecond for r in rounds)
    summary["xStock"] = summarize(pairedRatios(rounds, stock)) if stock else None
    summary["xCoturn"] = summarize(pairedRatios(rounds, coturn)) if coturn else None
    return summary


def _number(value: Optional[float], kind: str) -> str:
    if value is None:
        return "-"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "cpu":
        return f"{value:.2f}"
    if kind == "percent":
        return f"{value * 100:.2f}"
    if kind == "us":
        return f"{value:.0f}" if value < 10000 else f"{value / 1000:.1f}ms"
    # Counts and rates: three significant digits with a k or M suffix.
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.3g}{suffix}" if scaled < 1000 else f"{scaled:.0f}{suffix}"
    return f"{value:.3g}"


_COLUMNS = (
    ("forwardedPerSecond", "fwd/s", "count"),
    ("cpuPerSecond", "srv cpu/s", "cpu"),
    ("perCpuSecond", "fwd/cpu-s", "count"),
    ("xStock", "x stock", "ratio"),
    ("xCoturn", "x coturn", "ratio"),
    ("loss", "loss %", "percent"),
    ("rttMedianUs", "rtt p50 us", "us"),
    ("rttP99Us", "rtt p99 us", "us"),
    ("loadCpuPerSecond", "load cpu/s", "cpu"),
)


def formatTable(summaries: Mapping[str, Mapping[str, Optional[Summary]]]) -> str:
    """
    One table of variants (rows, in the mapping's order) by metric: the median on the
    variant's line, C{min-max} on the line below.
    """
    header = ["variant"] + [title for _, title, _ in _COLUMNS]
    rows: List[List[str]] = []
    for variant, summary in summaries.items():
        medians, ranges = [variant], [""]
        for name, _, kind in _COLUMNS:
            s = summary.get(name)
            medians.append(_number(s.median if s else None, kind))
            ranges.append(
                f"{_number(s.min, kind)}-{_number(s.max, kind)}" if s and s.count > 1 else ""
            )
        rows += [medians, ranges]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:])
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
