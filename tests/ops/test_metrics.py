"""/metrics: counters right across worker processes, database gauges from one snapshot per
interval, and the dashboard and alerts (deploy/) naming only metrics a live scrape has."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import asyncpg
import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app.core.config import PROJECT_ROOT, Settings
from app.core.metrics import WEBHOOK_OUTCOMES
from app.ops.backup.files import BackupMetadata
from app.ops.localpg import free_port
from app.videos.webhook_router import Ack
from tests.support.apps import ADMIN_TOKEN, TEST_MEDIA_DIR, make_settings, serve_app, wait_until
from tests.support.database import PgServer
from tests.support.factories import create_user
from tests.support.helpers import VIDGEN

TOKEN = "a-metrics-token-for-tests-0123456789"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}
T2V = {"model": "kling-v2-master-t2v", "prompt": "a quiet harbour at dawn"}
DEPLOY = PROJECT_ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "vidgen.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.text
    return samples(response.text)


async def create_videos(client: httpx.AsyncClient, count: int) -> list[str]:
    user = await create_user(client, credits=1000)
    ids = []
    for _ in range(count):
        response = await client.post(
            "/api/videos", json=T2V, headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    cancel = await client.post(f"/api/videos/{ids[0]}/cancel", headers=user.auth)
    assert cancel.status_code == 200
    return ids


# -- `vidgen serve --workers 2` -----------------------------------------------------------


class Workers:
    """`vidgen serve --workers 2` in a child process; TMPDIR is the test's, so the metrics
    directory it makes for its workers can be looked at."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.log = tmp_path / "serve.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "APP_ENV": "test",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "METRICS_TOKEN": TOKEN,
            "DISPATCH_ENABLED": "false",
            "MEDIA_DIR": str(TEST_MEDIA_DIR),
            "BACKUP_DIR": str(tmp_path / "backups"),
            "DB_POOL_SIZE": "2",
            "RATE_LIMIT_CREATES_PER_MINUTE": "0",
            "TMPDIR": str(self.tmp),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def metrics_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("vidgen-metrics-*"))

    def worker_files(self) -> dict[int, Path]:
        """Each worker's counter file, by pid."""
        return {
            int(path.stem.rsplit("_", 1)[1]): path
            for directory in self.metrics_dirs()
            for path in directory.glob("counter_*.db")
        }

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [VIDGEN, "serve", "--port", str(self.port), "--workers", "2"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.spawn()

        async def both_workers_up() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            return len(self.worker_files()) == 2

        await wait_until(both_workers_up, within=60, what="two workers")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]


@asynccontextmanager
async def two_workers(database_url: str, tmp_path: Path) -> AsyncIterator[Workers]:
    server = Workers(database_url, tmp_path)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


def fresh_connections(base_url: str) -> httpx.AsyncClient:
    """A client opening a connection per request, so the kernel hands them to either worker."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
    )


def one_worker_count(counter_file: Path, name: str, **labels: str) -> float:
    """What one worker alone counted: its file, read by itself."""
    alone = counter_file.parent.parent / f"alone-{counter_file.stem}"
    alone.mkdir(exist_ok=True)
    shutil.copy(counter_file, alone / counter_file.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
    found = {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }
    return found.get(tuple(sorted(labels.items())), 0.0)


LIVEZ = {"method": "GET", "route": "/livez", "status": "200"}
SCRAPES = {"method": "GET", "route": "/metrics", "status": "200"}


async def test_counters_add_up_across_workers_and_never_go_down(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        two_workers(database_url, tmp_path) as server,
        fresh_connections(server.url) as client,
    ):
        sent = 0

        async def both_workers_served() -> bool:
            nonlocal sent
            answers = await asyncio.gather(*(client.get("/livez") for _ in range(20)))
            assert all(a.status_code == 200 for a in answers)
            sent += len(answers)
            per_worker = [
                one_worker_count(path, "vidgen_http_requests_total", **LIVEZ)
                for path in server.worker_files().values()
            ]
            return len(per_worker) == 2 and all(n > 0 for n in per_worker)

        # Else a scrape could be right by reading one worker's registry.
        await wait_until(both_workers_served, within=60, what="requests on both workers")

        async def all_counted() -> bool:
            return value(await scrape(client), "vidgen_http_requests_total", **LIVEZ) == sent

        await wait_until(all_counted, within=10, what=f"{sent} requests counted")
        scrapes_seen = []
        for _ in range(10):
            scraped = await scrape(client)
            assert value(scraped, "vidgen_http_requests_total", **LIVEZ) == sent
            scrapes_seen.append(value(scraped, "vidgen_http_requests_total", **SCRAPES))
            # The database gauges: once per status, whichever workers set them (no pid label).
            jobs = [k for k in scraped if k[0] == "vidgen_jobs"]
            assert len(jobs) == 7 and all(dict(labels).keys() == {"status"} for _, labels in jobs)
        assert scrapes_seen == sorted(scrapes_seen) and scrapes_seen[-1] >= 9
        assert len(server.metrics_dirs()) == 1
    assert server.metrics_dirs() == []  # removed when the server stops


def names_and_matchers(expr: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """Each `vidgen_…` selector in a PromQL expression, with its label matchers."""
    for match in re.finditer(r"\b(vidgen_[a-z_]+)(\{([^}]*)\})?", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', match.group(3) or "")
        yield match.group(1), matchers


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


async def test_every_metric_the_dashboard_and_alerts_use_is_in_a_live_scrape(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        two_workers(database_url, tmp_path) as server,
        fresh_connections(server.url) as client,
    ):
        await create_videos(client, 2)
        refused = await client.post("/api/webhooks/fal", json={"request_id": "forged"})
        assert refused.status_code == 401
        scraped = await scrape(client)
    exprs = alert_exprs() + dashboard_exprs()
    seen = {(name, labels) for name, labels in scraped}
    missing = []
    for expr in exprs:
        for name, matchers in names_and_matchers(expr):
            series = [dict(labels) for sample, labels in seen if sample == name]
            if not series:
                missing.append(f"{name} (in {expr!r})")
            for label, op, wanted in matchers:
                if not any(label in s for s in series):
                    missing.append(f"{name}{{{label}}} (in {expr!r})")
                elif op == "=" and not any(s.get(label) == wanted for s in series):
                    missing.append(f'{name}{{{label}="{wanted}"}} (in {expr!r})')
    assert not missing, "not in the scrape:\n" + "\n".join(missing)


# -- the database gauges -------------------------------------------------------------------


async def test_database_gauges_match_the_database_and_are_computed_once_per_interval(
    database_url: str, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, metrics_token=TOKEN, metrics_refresh_s=3600)
    async with serve_app(settings) as client:
        await create_videos(client, 3)
        first = await scrape(client)
        for status, count in await db.fetch("SELECT status, count(*) FROM videos GROUP BY status"):
            assert value(first, "vidgen_jobs", status=status) == count
        assert value(first, "vidgen_jobs", status="completed") == 0
        assert value(first, "vidgen_videos_rows") == 3
        assert value(first, "vidgen_videos_table_bytes") > 0
        assert value(first, "vidgen_jobs_overdue") == 0
        for kind, rows, total in await db.fetch(
            'SELECT kind, count(*), sum(amount) FROM "creditTransactions" GROUP BY kind'
        ):
            assert value(first, "vidgen_ledger_rows", kind=kind) == rows
            assert value(first, "vidgen_ledger_credits", kind=kind) == total
        assert value(first, "vidgen_database_up") == 1
        refreshed = await db.fetchval('SELECT "refreshedAt" FROM "metricsSnapshot"')

        await create_videos(client, 1)
        second = await scrape(client)
        # Within METRICS_REFRESH_S: the same numbers, read from the row, not recomputed.
        assert value(second, "vidgen_videos_rows") == 3
        assert await db.fetchval('SELECT "refreshedAt" FROM "metricsSnapshot"') == refreshed

        # Past the interval (moved back rather than waited for), and past JOB_DEADLINE_S.
        await db.execute("""UPDATE "metricsSnapshot" SET "refreshedAt" = now() - interval '2h'""")
        await db.execute("""UPDATE videos SET "createdAt" = now() - interval '2h'
                            WHERE status = 'pending'""")
        third = await scrape(client)
        assert value(third, "vidgen_videos_rows") == 4
        assert value(third, "vidgen_jobs", status="pending") == 2
        assert value(third, "vidgen_jobs", status="canceled") == 2
        assert value(third, "vidgen_jobs_overdue") == 2  # JOB_DEADLINE_S is 1 h by default


async def test_concurrent_scrapes_of_many_replicas_recompute_the_snapshot_once(
    database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        """
        CREATE TABLE refreshes ("at" TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
        CREATE FUNCTION count_refresh() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN INSERT INTO refreshes DEFAULT VALUES; RETURN NEW; END $$;
        CREATE TRIGGER counted AFTER UPDATE ON "metricsSnapshot"
            FOR EACH ROW EXECUTE FUNCTION count_refresh();
        """
    )
    settings = make_settings(database_url, metrics_token=TOKEN, db_pool_size=3)
    async with (
        serve_app(settings) as a,
        serve_app(settings) as b,
        serve_app(settings) as c,
        serve_app(settings) as d,
    ):
        await create_videos(a, 2)
        await scrape(a)  # computed once, so every replica has numbers to serve
        await db.execute("""UPDATE "metricsSnapshot" SET "refreshedAt" = now() - interval '1h'""")
        await db.execute("DELETE FROM refreshes")
        results = await asyncio.gather(*(scrape(client) for client in (a, b, c, d) * 3))
    assert await db.fetchval("SELECT count(*) FROM refreshes") == 1
    for scraped in results:
        assert value(scraped, "vidgen_videos_rows") == 2


async def test_ledger_totals_only_behind_the_token(database_url: str) -> None:
    async with serve_app(make_settings(database_url)) as client:
        await create_videos(client, 1)
        open_scrape = await client.get("/metrics")
        assert open_scrape.status_code == 200
        assert "vidgen_videos_rows" in open_scrape.text
        assert not any(name.startswith("vidgen_ledger") for name, _ in samples(open_scrape.text))
    async with serve_app(make_settings(database_url, metrics_token=TOKEN)) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert value(await scrape(client), "vidgen_ledger_rows", kind="debit") == 1


def test_production_refuses_to_start_without_a_metrics_token() -> None:
    production: dict[str, Any] = {
        "_env_file": None,
        "app_env": "production",
        "admin_token": "a-real-admin-token-0123456789",
        "fal_key": "key-id:key-secret",
        "public_base_url": "https://api.example.com",
        "media_signing_key": "a-real-media-signing-key-0123456789",
    }
    with pytest.raises(ValidationError, match="METRICS_TOKEN is required in production"):
        Settings(**production)
    assert Settings(**production, metrics_token=TOKEN).metrics_token == TOKEN


async def test_an_unreachable_database_reads_0_and_the_scrape_still_answers(
    database_url: str, pg_server: PgServer
) -> None:
    name = database_url.rsplit("/", 1)[1]
    async with serve_app(make_settings(database_url, metrics_token=TOKEN)) as client:
        assert value(await scrape(client), "vidgen_database_up") == 1
        admin = await asyncpg.connect(pg_server.url)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
        finally:
            await admin.close()
        down = await scrape(client)
    assert value(down, "vidgen_database_up") == 0
    assert value(down, "vidgen_http_requests_total", method="GET", route="/metrics", status="200")
    assert ("vidgen_jobs", (("status", "pending"),)) in down  # the last numbers, kept


# -- the newest backup ---------------------------------------------------------------------


def write_backup(backup_dir: Path, created_at: datetime, *, whole: bool = True) -> None:
    name = f"backup_{created_at:%Y%m%d_%H%M%S}.sql.gz"
    dump = backup_dir / name
    dump.write_bytes(b"\x1f\x8b not really a dump")
    metadata = BackupMetadata(
        created_at=created_at,
        database="vidgen",
        database_size_bytes=1,
        migration_head=None,
        row_counts={},
        pg_dump_version="15",
        server_version="15",
        size_bytes=dump.stat().st_size + (0 if whole else 1),
    )
    dump.with_name(name + ".json").write_text(metadata.to_json())
    dump.with_name(name + ".sha256").write_text(f"{'0' * 64}  {name}\n")


async def test_backup_age_is_the_newest_whole_backup(database_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    settings = make_settings(
        database_url, metrics_token=TOKEN, backup_dir=backups, metrics_refresh_s=3600
    )
    async with serve_app(settings) as client:
        assert value(await scrape(client), "vidgen_backup_newest_age_seconds") == float("inf")

    now = datetime.now(UTC).replace(microsecond=0)
    write_backup(backups, now - timedelta(hours=30))
    write_backup(backups, now - timedelta(hours=3))
    write_backup(backups, now - timedelta(hours=1), whole=False)  # cut short: not counted
    (backups / "backup_20990101_000000.sql.gz").write_bytes(b"no sidecars: being written")
    async with serve_app(settings) as client:
        age = value(await scrape(client), "vidgen_backup_newest_age_seconds")
    assert 3 * 3600 <= age < 3 * 3600 + 60


# -- webhooks, and the deploy/ files -------------------------------------------------------


async def test_refused_webhook_signatures_are_counted(client: httpx.AsyncClient) -> None:
    before = samples((await client.get("/metrics")).text)
    for outcome in (*get_args(Ack), "invalid_signature"):  # every outcome exported from 0
        assert outcome in WEBHOOK_OUTCOMES
        assert value(before, "vidgen_fal_webhooks_total", outcome=outcome) == 0
    refused = await client.post("/api/webhooks/fal", json={"request_id": "forged"})
    assert refused.status_code == 401
    after = samples((await client.get("/metrics")).text)
    assert value(after, "vidgen_fal_webhooks_total", outcome="invalid_signature") == 1


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test installs it (apt: prometheus)"
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run(
            [promtool, *command],
            cwd=ALERTS.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_grafana_json_covering_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            expr = target["expr"]
            for opening, closing in ("()", "{}", "[]"):
                assert expr.count(opening) == expr.count(closing), expr
            assert re.search(r"\bvidgen_[a-z_]+", expr), expr
    used = {name for expr in dashboard_exprs() for name, _ in names_and_matchers(expr)}
    assert used >= {
        "vidgen_http_requests_total",
        "vidgen_http_request_duration_seconds_bucket",
        "vidgen_jobs",
        "vidgen_fal_errors_total",
        "vidgen_fal_webhooks_total",
        "vidgen_videos_table_bytes",
        "vidgen_videos_rows",
        "vidgen_ledger_credits",
        "vidgen_backup_newest_age_seconds",
        "vidgen_media_copies_total",
        "vidgen_media_copied_bytes_total",
    }
    assert any("histogram_quantile" in expr for expr in dashboard_exprs())
