"""The HTTP endpoints over a real socket (aiohttp's client): /healthz, /readyz as
the ready flag moves, /metrics parsed by prometheus_client's parser and following
commits, /stats, HTTPS; and the Grafana dashboard names only exported metrics."""

import asyncio
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from self_signed import self_signed_certificate

import colibri_mm as cm
from colibri_mm.database import Database
from colibri_mm.server.http import HttpServer
from colibri_mm.server.metrics import ServerMetrics

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""The Accept header of a Prometheus scrape."""
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "colibri.json"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with cm.connect(tmp_path / "db", create=True) as database:
        yield database


Client = Callable[..., Awaitable[tuple[int, str, str]]]
"""``await get(path, accept="*/*")``: status, content type header and body of a GET."""


def with_server(metrics: ServerMetrics, ready: Callable[[], bool],
                check: Callable[[Client], Awaitable[None]],
                ssl_context: ssl.SSLContext | None = None,
                client_ssl: ssl.SSLContext | None = None) -> None:
    """Start an HttpServer on a free port, run ``check`` with a client of it, stop."""

    async def run() -> None:
        server = HttpServer(metrics, ready, "127.0.0.1", 0, ssl_context=ssl_context)
        await server.start()
        scheme = "http" if ssl_context is None else "https"
        host = "127.0.0.1" if ssl_context is None else "localhost"
        try:
            async with aiohttp.ClientSession() as session:
                async def get(path: str, accept: str = "*/*") -> tuple[int, str, str]:
                    url = f"{scheme}://{host}:{server.port}{path}"
                    async with session.get(url, ssl=client_ssl or True,
                                           headers={"Accept": accept}) as response:
                        return (response.status, response.headers["Content-Type"],
                                await response.text())
                await check(get)
        finally:
            await server.stop()

    asyncio.run(run())


def samples(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition by name and labels."""
    return {sample.name + str(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_health_and_readiness(db: Database) -> None:
    ready = False

    async def check(get: Client) -> None:
        nonlocal ready
        assert (await get("/healthz"))[0::2] == (200, "ok")
        assert (await get("/readyz"))[0::2] == (503, "not ready")
        ready = True
        assert (await get("/readyz"))[0::2] == (200, "ready")
        ready = False  # shutting down
        assert (await get("/readyz"))[0] == 503
        assert (await get("/healthz"))[0] == 200
        assert (await get("/nothing"))[0] == 404

    with_server(ServerMetrics(db), lambda: ready, check)


def test_metrics_parse_and_follow_commits(db: Database) -> None:
    metrics = ServerMetrics(db, open_connections=lambda: 2)

    async def check(get: Client) -> None:
        status, content_type, text = await get("/metrics")
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        before = samples(text)
        assert before["colibri_connections[]"] == 2
        db.kv.put("a", "1")
        db.kv.put("b", "2")
        metrics.observe_request("GET", 0.001, None)
        metrics.observe_request("SET", 0.002, "OOM")
        metrics.observe_commit(0.004)
        after = samples((await get("/metrics"))[2])
        assert after["colibri_commits_total[]"] == before["colibri_commits_total[]"] + 2
        assert after["colibri_wal_written_bytes_total[]"] > \
            before["colibri_wal_written_bytes_total[]"]
        assert after["colibri_request_duration_seconds_count[('command', 'get')]"] == 1
        assert after["colibri_errors_total[('kind', 'OOM')]"] == 1
        assert after["colibri_commit_duration_seconds_count[]"] == 1
        assert after["colibri_commit_duration_seconds_bucket[('le', '0.005')]"] == 1
        status, content_type, text = await get("/metrics", PROMETHEUS_ACCEPT)
        assert content_type.startswith("application/openmetrics-text; version=1.0.0")
        families = {f.name: f for f in openmetrics_families(text)}  # checks the format
        assert families["colibri_commits"].samples[0].value == \
            after["colibri_commits_total[]"]

    with_server(metrics, lambda: True, check)


def test_stats_is_json_of_the_snapshot_and_the_database(db: Database) -> None:
    metrics = ServerMetrics(db)

    async def check(get: Client) -> None:
        db.kv.put("a", "1")
        metrics.observe_request("GET", 0.001, None)
        status, content_type, text = await get("/stats")
        assert status == 200 and content_type.startswith("application/json")
        stats = json.loads(text)
        assert stats["database"]["published_csn"] == db.stats()["published_csn"]
        assert stats["metrics"]["values"]["colibri_commits_total"] == \
            db.stats()["wal_commits"]
        assert stats["metrics"]["request_latency_seconds"]["count"] == 1
        assert "colibri_commits_total" in stats["metrics"]["rates"]

    with_server(metrics, lambda: True, check)


def test_https(db: Database, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    client_ssl = ssl.create_default_context(cafile=str(cert))

    async def check(get: Client) -> None:
        assert (await get("/healthz"))[0::2] == (200, "ok")

    with_server(ServerMetrics(db), lambda: True, check, server_ssl, client_ssl)


def test_grafana_dashboard_uses_only_exported_metrics(db: Database) -> None:
    metrics = ServerMetrics(db, open_connections=lambda: 1)
    db.kv.put("a", "1")
    db.checkpoint()
    metrics.observe_request("GET", 0.001, "ERR")
    metrics.observe_commit(0.001)
    exported: set[str] = set()

    async def check(get: Client) -> None:
        for family in text_string_to_metric_families((await get("/metrics"))[2]):
            exported.update(sample.name for sample in family.samples)

    with_server(metrics, lambda: True, check)
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = re.findall(r"\bcolibri_\w+", target["expr"])
            assert names, (panel["title"], target["expr"])
            assert set(names) <= exported, (panel["title"], set(names) - exported)
    wanted = {"colibri_commits_total", "colibri_commit_duration_seconds_bucket",
              "colibri_request_duration_seconds_bucket", "colibri_wal_written_bytes_total",
              "colibri_wal_syncs_total", "colibri_wal_group_commits_total",
              "colibri_checkpoints_total", "colibri_data_resident_bytes",
              "colibri_connections", "colibri_process_resident_memory_bytes",
              "colibri_process_disk_read_bytes_total"}
    drawn = {name for panel in panels for target in panel["targets"]
             for name in re.findall(r"\bcolibri_\w+", target["expr"])}
    assert wanted <= drawn
