# -*- test-case-name: tests.integration.test_metrics -*-
"""
Prometheus metrics of a real C{twistd turn}, scraped by a real Prometheus (Debian's
C{prometheus}, started here in a throwaway directory on a free 127.0.0.1 port and stopped by
its PID) while C{turnutils_uclient} relays through the server; PromQL over Prometheus' HTTP API
sees the live allocations and a traffic rate above zero.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from tests.integration.harness import (
    HOST,
    PASSWORD,
    USER,
    freeListeningPort,
    requireModule,
    requireTool,
    runUclient,
    stopProcess,
)

pytestmark = pytest.mark.integration


class PrometheusProcess:
    """
    Debian's C{prometheus} scraping one target every half second, with its data in a
    directory of its own.
    """

    def __init__(self, workdir: Path, target: str) -> None:
        binary = requireTool("prometheus")
        self.port = freeListeningPort()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n"
            "scrape_configs:\n  - job_name: turn\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.logPath = workdir / "prometheus.log"
        with open(self.logPath, "wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address={HOST}:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/-/ready", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"prometheus did not start:\n{self.log()}")
                time.sleep(0.2)

    def log(self) -> str:
        return self.logPath.read_text(errors="replace")

    def query(self, promql: str) -> Optional[float]:
        """
        The value of an instant query that gives one sample, or L{None} without one.
        """
        url = f"http://{HOST}:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            answer: Dict[str, Any] = json.load(response)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def waitFor(self, promql: str, predicate, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.query(promql)
            if value is not None and predicate(value):
                return value
            time.sleep(0.25)
        raise AssertionError(f"{promql} never satisfied the test (last {value!r})")

    def stop(self) -> None:
        stopProcess(self.process)


def test_prometheusScrapesDuringRelay(turnServer, echoPeer, tmp_path) -> None:
    """
    During a uclient run with four clients, Prometheus scraping the server sees the live
    allocations (turn_total_allocations, coturn's name, and turn_allocations), the traffic
    counters moving (rate above zero while the sessions live), and after the run every
    datagram uclient sent counted.
    """
    requireModule("prometheus_client")
    metricsPort = freeListeningPort()
    server = turnServer(
        "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers", "--prometheus",
        "--prometheus-address", HOST, "--prometheus-port", str(metricsPort),
    )
    with urllib.request.urlopen(f"http://{HOST}:{metricsPort}/metrics", timeout=5) as page:
        text = page.read().decode()
        assert page.headers["Content-Type"].startswith("text/plain")
    assert "turn_total_allocations{type=\"UDP\"} 0.0" in text, text
    prometheus = PrometheusProcess(tmp_path, f"{HOST}:{metricsPort}")
    try:
        prometheus.waitFor("up", lambda v: v == 1)
        results: Dict[str, Any] = {}
        uclient = threading.Thread(target=lambda: results.update(result=runUclient(
            server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD), messages=600,
            clients=4,
        )), daemon=True)
        uclient.start()
        live = prometheus.waitFor('sum(turn_total_allocations{type="UDP"})', lambda v: v >= 4)
        rate = prometheus.waitFor("rate(turn_traffic_rcvb[2s])", lambda v: v > 0)
        assert prometheus.query('sum(turn_allocations{transport="udp"})') >= 4
        uclient.join(timeout=60)
        result = results["result"]
        assert result.returncode == 0, result
        counted = prometheus.waitFor("turn_traffic_rcvp", lambda v: v >= 4 * 600)
        print(f"live allocations {live}, traffic rate {rate} B/s, packets counted {counted}")
    finally:
        prometheus.stop()
