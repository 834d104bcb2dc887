"""The results as markdown tables (targets first), a JSON copy, and the PNG plot."""

# ruff: noqa: RUF001 (tables use the multiplication sign for ratios and an en dash for "none")

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.inprocess import CallProfile
from bench.measure import RunResult
from bench.profile import Profile

RSS_LIMIT_MB = 150


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            "matplotlib not found: pip install matplotlib (into this virtualenv)"
        ) from error


@dataclass
class Target:
    figure: str
    measured: str
    baseline: str
    ratio: float | None
    goal: str
    met: bool | None

    def row(self) -> str:
        ratio = f"{self.ratio:.2f}×" if self.ratio is not None else "–"
        met = {True: "✅ yes", False: "❌ **no**", None: "–"}[self.met]
        cells = [self.figure, self.measured, self.baseline, ratio, self.goal, met]
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def at(runs: list[RunResult], concurrency: int) -> RunResult | None:
    return next((r for r in runs if r.concurrency == concurrency), None)


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def lat(run: RunResult) -> str:
    return f"{ms(run.p50)} / {ms(run.p95)} / {ms(run.p99)}"


def targets(data: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    create, hooks = data["create"], data["webhook"]
    floor32 = at(create.get("floor", []), 32)
    for label in ("api-1w", "api-2w"):
        api32 = at(create.get(label, []), 32)
        if floor32 and api32:
            ratio = api32.rps / floor32.rps
            found.append(
                Target(
                    f"create throughput c=32, {workers(label)}",
                    f"{api32.rps:,.0f} req/s",
                    f"floor {floor32.rps:,.0f} req/s",
                    ratio,
                    "≥ 0.5× floor",
                    ratio >= 0.5,
                )
            )
    floor_hook = hooks.get("floor")
    for label in ("api-1w", "api-2w"):
        api_hook = hooks.get(label)
        if floor_hook and api_hook:
            ratio = api_hook.rps / floor_hook.rps
            found.append(
                Target(
                    f"webhook ingest c={api_hook.concurrency}, {workers(label)}",
                    f"{api_hook.rps:,.0f} req/s",
                    f"floor {floor_hook.rps:,.0f} req/s",
                    ratio,
                    "≥ 0.6× floor",
                    ratio >= 0.6,
                )
            )
    for label, entry in data["open_loop"].items():
        result: RunResult = entry["result"]
        tail = result.p99 / result.p50 if result.p50 else None
        found.append(
            Target(
                f"create p99 at 70% of peak ({entry['rate']:,.0f} req/s), {workers(label)}",
                f"p99 {ms(result.p99)} ms",
                f"p50 {ms(result.p50)} ms",
                tail,
                "p99 ≤ 4× p50",
                tail is not None and tail <= 4 and result.errors == 0,
            )
        )
    reads = data["reads"]
    sizes = [k for k in reads if isinstance(reads[k], dict) and "list" in reads[k]]
    if len(sizes) == 2:
        small, large = sizes
        for name in ("list", "balance"):
            a, b = reads[small][name], reads[large][name]
            ratio = b.p50 / a.p50
            endpoint = "GET /api/videos" if name == "list" else "GET /api/credits"
            found.append(
                Target(
                    f"{name} latency p50 ({endpoint}) at {large} rows",
                    f"{ms(b.p50)} ms",
                    f"{small}: {ms(a.p50)} ms",
                    ratio,
                    f"≤ 1.3× {small}",
                    ratio <= 1.3,
                )
            )
    backup = data["backup"]
    if "vidgen backup create" in backup and "pg_dump | gzip" in backup:
        ours, bare = backup["vidgen backup create"], backup["pg_dump | gzip"]
        ratio = ours["seconds"] / bare["seconds"]
        found.append(
            Target(
                "`vidgen backup create` wall time",
                f"{ours['seconds']:.1f} s",
                f"pg_dump | gzip {bare['seconds']:.1f} s",
                ratio,
                "≤ 1.1× bare",
                ratio <= 1.1,
            )
        )
    for label, values in data["rss"].items():
        if values:
            peak = max(values)
            found.append(
                Target(
                    f"peak RSS per worker, {label}",
                    f"{peak:.0f} MB",
                    f"{len(values)} worker(s)",
                    None,
                    f"≤ {RSS_LIMIT_MB} MB",
                    peak <= RSS_LIMIT_MB,
                )
            )
    return found


def workers(label: str) -> str:
    return "1 worker" if label.endswith("1w") else "2 workers"


def busy(run: RunResult) -> str:
    return "–" if run.box_busy is None else f"{run.box_busy:.0%}"


def conns(run: RunResult) -> str:
    return "–" if run.new_connections is None else f"{run.new_connections:.3f}"


def cpu_cell(run: RunResult) -> str:
    parts = [f"{role} {us:,.0f}" for role, us in run.cpu_us.items()]
    return ", ".join(parts) + f" (total {sum(run.cpu_us.values()):,.0f})" if parts else "–"


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    plan = meta["plan"]
    png = "latest-quick.png" if meta["mode"] == "quick" else "latest.png"
    out = [
        f"# vidgen benchmark: {meta['date']} ({meta['mode']} run, {meta['elapsed_s']} s)",
        "",
        f"Machine: {meta['cpus']} CPUs ({meta['cpu']}), {meta['memory_gib']} GiB. "
        f"{meta['postgres']} with its "
        + (
            "**settings changed for a diagnostic** (below"
            if meta.get("pg_settings")
            else "**normal durability** (fsync, synchronous_commit, full_page_writes on"
        )
        + "; defaults otherwise: shared_buffers 128 MB), started by "
        f"`LocalPostgres`; Python {meta['python']}; `vidgen serve` (uvicorn + uvloop + "
        f"httptools); load from {meta['wrk']} (closed loop) and bench/openloop.py (open loop), "
        "**on the same box** as the server and the database.",
        "",
        *(
            [
                f"**A diagnostic run, not the product's configuration**: PostgreSQL started with "
                f"{', '.join(f'`{x}`' for x in meta['pg_settings'])}.",
                "",
            ]
            if meta.get("pg_settings")
            else []
        ),
        "App settings: `APP_ENV=production`, `DISPATCH_ENABLED=false` (creates are measured "
        "without Fal submission, so the figure is the request + database path), "
        "`MAX_ACTIVE_JOBS_PER_USER=1000000000`, default pools (10 driver + 5 session "
        "connections per worker, no overflow, opened at start-up). "
        "Webhooks are signed with the simulator's Ed25519 key and verified against its JWKS "
        "(`FAL_JWKS_URL` → the running simulator). Creates spread over 64 users; each run "
        f"{plan['seconds']} s after {plan['warmup']} s of warm-up.",
        "",
        "## Targets",
        "",
        "| figure | measured | baseline | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
        *(t.row() for t in targets(data)),
        "",
        f"![throughput and latency against concurrency]({png})",
        "",
    ]
    out += create_section(data) + open_loop_section(data) + webhook_section(data)
    out += more_section(data)
    out += reads_section(data) + backup_section(data) + rss_section(data)
    if data["profiles"]:
        out += ["## Profiles", "", *profiles_section(data["profiles"])]
    return "\n".join(out) + "\n"


def profiles_section(profiles: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, entry in profiles.items():
        if isinstance(entry, Profile):
            lines.append(entry.markdown(f"py-spy, one worker of the 1-worker server: {name}"))
        elif isinstance(entry, CallProfile):
            lines.append(entry.markdown())
        elif isinstance(entry, dict):
            lines += [
                f"#### perf, the same worker and window: {name.removesuffix(' perf')}",
                "",
                "| shared object | share of CPU samples |",
                "|---|---:|",
                *(f"| {dso} | {share:.1%} |" for dso, share in list(entry.items())[:8]),
                "",
            ]
        else:
            lines.append(str(entry))
    return lines


def create_section(data: dict[str, Any]) -> list[str]:
    create = data["create"]
    floor = create.get("floor", [])
    lines = [
        "## Create: `POST /api/videos` against the raw-asyncpg floor",
        "",
        "Floor = lock the user, insert the video, move the balance + append the ledger row "
        "(the app's one-statement CTE), commit: 5 round trips over asyncpg. Latencies "
        "p50 / p95 / p99 in ms.",
        "",
        "| c | floor req/s | floor latency | API 1w req/s | API 1w latency | 1w ÷ floor "
        "| API 2w req/s | API 2w latency | 2w ÷ floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in floor:
        row = [str(f.concurrency), f"{f.rps:,.0f}", lat(f)]
        for label in ("api-1w", "api-2w"):
            run = at(create.get(label, []), f.concurrency)
            row += [f"{run.rps:,.0f}", lat(run), f"{run.rps / f.rps:.2f}×"] if run else ["–"] * 3
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "CPU per request at c=32 (µs; `load generator` is wrk for the API and the asyncpg "
        "client itself for the floor and the replay):",
        "",
        "| run | req/s | CPU µs per request | machine CPU busy | new DB connections per request |",
        "|---|---:|---|---:|---:|",
    ]
    replay = create.get("replay", [])
    for label, runs in (("floor", floor), ("replay of the API's SQL", replay),
                        ("API 1 worker", create.get("api-1w", [])),
                        ("API 2 workers", create.get("api-2w", [])),
                        ("framework alone (FastAPI, empty handler)",
                         create.get("framework alone", []))):  # fmt: skip
        run = at(runs, 32)
        if run:
            lines.append(
                f"| {label} | {run.rps:,.0f} | {cpu_cell(run)} | {busy(run)} | {conns(run)} |"
            )
    lines += [
        "",
        "The replay sends every statement the API sends for one create (2 round trips: the "
        "key lookup, then one statement outside a transaction block that charges and checks "
        "the active-job cap on the user's row, inserts the video, its ledger row and its event "
        "and stores the response under the key) over raw asyncpg: floor → replay is the cost "
        "of the extra SQL, replay → API the cost of Python, HTTP and the framework. *Framework "
        "alone* is the same requests against FastAPI under the same uvicorn with handlers "
        "that only read the body (bench/nullapp.py): what HTTP + uvicorn + FastAPI cost "
        "before any work.",
        "",
    ]
    return lines


def open_loop_section(data: dict[str, Any]) -> list[str]:
    if not data["open_loop"]:
        return []
    lines = [
        "## Create latency at 70% of peak (open loop)",
        "",
        "Requests are scheduled at a fixed rate whatever the answers do, and latency is "
        "measured from the scheduled time (no coordinated omission). The client's own cost "
        "is measured against a null server at the same rate. *In the app* is the app's own "
        "duration of the same requests (its access log, matched by X-Request-Id): from the "
        "moment its middleware sees a request to its answer; the rest of the client's "
        "figure is time the request waited in the kernel, for the CPU, or in the client.",
        "",
        "| config | peak req/s | offered req/s | answered | p50 / p95 / p99 ms | p99 ÷ p50 "
        "| errors | client CPU µs/req | client alone p50 / p99 ms "
        "| in the app: p50 / p95 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, entry in data["open_loop"].items():
        r: RunResult = entry["result"]
        null: RunResult = entry["client_null_server"]
        lines.append(
            f"| {workers(label)} | {entry['peak']:,.0f} | {entry['rate']:,.0f} | {r.rps:,.0f} "
            f"| {lat(r)} | {r.p99 / r.p50 if r.p50 else 0:.1f}× | {r.errors} "
            f"| {entry['client_cpu_us']:.0f} | {ms(null.p50)} / {ms(null.p99)} "
            f"| {' / '.join(ms(x) for x in entry.get('server_ms', []))} |"
        )
    lines.append("")
    for label, entry in data["open_loop"].items():
        lines.append(f"- {workers(label)}: {entry['result'].notes}")
    return [*lines, ""]


def webhook_section(data: dict[str, Any]) -> list[str]:
    hooks = data["webhook"]
    floor = hooks.get("floor")
    lines = [
        "## Webhook ingest: signed `POST /api/webhooks/fal`",
        "",
        "Each delivery finishes a different pre-created `queued` job (1 in 10 reports a "
        "failure, which refunds). Floor = one conditional UPDATE that locks and finishes the "
        "job (+ the refund CTE on failure), commit. The replay is the app's own statement "
        "(status, event and refund in one statement, its own transaction). *Framework alone*: "
        "the same deliveries to FastAPI with an empty handler (no verification, no SQL).",
        "",
        "| run | c | req/s | p50 / p95 / p99 ms | ÷ floor | CPU µs per request "
        "| machine CPU busy | new DB connections per request | notes |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for label, run in hooks.items():
        ratio = f"{run.rps / floor.rps:.2f}×" if floor else "–"
        lines.append(
            f"| {label} | {run.concurrency} | {run.rps:,.0f} | {lat(run)} | {ratio} "
            f"| {cpu_cell(run)} | {busy(run)} | {conns(run)} | {run.notes or ''} |"
        )
    return [*lines, ""]


def combined(runs: list[RunResult]) -> RunResult | None:
    """Several runs of one configuration as one: all their requests over all their time, CPU
    per request weighted by requests (latency percentiles: the mean of the runs')."""
    if not runs:
        return None
    requests = sum(r.requests for r in runs)
    roles = {role for r in runs for role in r.cpu_us}
    return RunResult(
        name=runs[0].name,
        concurrency=runs[0].concurrency,
        requests=requests,
        seconds=sum(r.seconds for r in runs),
        p50=sum(r.p50 for r in runs) / len(runs),
        p95=sum(r.p95 for r in runs) / len(runs),
        p99=sum(r.p99 for r in runs) / len(runs),
        errors=sum(r.errors for r in runs),
        cpu_us={
            role: sum(r.cpu_us.get(role, 0.0) * r.requests for r in runs) / max(1, requests)
            for role in roles
        },
    )


def signed(value: float) -> str:
    return f"{value:+,.0f}"


def more_section(data: dict[str, Any]) -> list[str]:
    """Quote, media route, rate limit and live-update streams (issue 18), one row each."""
    rows: list[list[str]] = []
    for label, quote in data.get("quote", {}).items():
        create = at(data["create"].get(label, []), 32)
        beside, ratio = "–", "–"
        if create:
            beside = f"create c=32: {create.rps:,.0f} req/s, p99 {ms(create.p99)} ms"
            ratio = f"{quote.rps / create.rps:.2f}× req/s, {quote.p99 / create.p99:.2f}× p99"
        rows.append([
            f"quote `POST /api/videos/quote` c={quote.concurrency}, {workers(label)}",
            f"{quote.rps:,.0f} req/s, p50 {ms(quote.p50)} / p99 {ms(quote.p99)} ms",
            beside,
            ratio,
            f"CPU µs per quote: {cpu_cell(quote)}; {quote.errors} errors",
        ])  # fmt: skip
    for label, served in data.get("media", {}).items():
        rows += [
            [f"`GET /media/{{key}}` full read, {workers(label)}",
             f"{served['full_mb_s']:,.0f} MB/s, {served['full_cpu_ms_per_mb']:.2f} ms worker "
             "CPU per MB", "–", "–",
             f"a {served['size'] / 1e6:,.0f} MB file in the local store, one streamed GET"],
            [f"`GET /media/{{key}}` 1 MiB ranged reads, {workers(label)}",
             f"{served['range_mb_s']:,.0f} MB/s, {served['range_cpu_ms_per_mb']:.2f} ms "
             "worker CPU per MB", "–", "–",
             f"{served['ranges']} `Range` GETs at random offsets, one at a time, "
             f"{served['range_ms_per_read']:.1f} ms each"],
        ]  # fmt: skip
    limit = data.get("rate_limit", {})
    on, off = combined(limit.get("limit on", [])), combined(limit.get("limit off", []))
    if on and off:
        app_on, app_off = on.cpu_us.get("app", 0.0), off.cpu_us.get("app", 0.0)
        pg_on, pg_off = on.cpu_us.get("postgres", 0.0), off.cpu_us.get("postgres", 0.0)
        buckets = data.get("rate_limit_buckets")
        checked = "" if buckets is None else f"; {buckets} creators' buckets in `rateLimits`"
        rows.append([
            "create c=32 with the rate limit on (nothing refused), 1 worker",
            f"{on.rps:,.0f} req/s; CPU µs per create: app {app_on:,.0f}, postgres {pg_on:,.0f}",
            f"limit off: {off.rps:,.0f} req/s; app {app_off:,.0f}, postgres {pg_off:,.0f}",
            f"{on.rps / off.rps:.2f}× req/s",
            f"**cost of the limit per create: app {signed(app_on - app_off)} µs CPU, "
            f"postgres {signed(pg_on - pg_off)} µs CPU**; runs on / off: "
            f"{' / '.join(f'{r.rps:,.0f}' for r in limit['limit on'])} and "
            f"{' / '.join(f'{r.rps:,.0f}' for r in limit['limit off'])} req/s; "
            f"{on.errors + off.errors} errors{checked}",
        ])  # fmt: skip
    held = data.get("streams", {})
    if held:
        cpu = held["cpu_percent"]
        statements = ", ".join(f"{k} {v}" for k, v in held["statements_during"].items())
        opening = ", ".join(f"{k} {v}" for k, v in held["statements_opening"].items())
        refused = ", ".join(f"{n} {k}" for k, n in held["refused"].items()) or "none refused"
        rows.append([
            f"{held['opened']} live-update streams `GET /api/videos/{{id}}/events` held "
            f"{held['held_seconds']:.0f} s, 1 worker",
            f"{held['statements_per_s']:.1f} statements/s to PostgreSQL, of which "
            f"{held['reads_per_s']:.1f} reads/s (without asyncpg's one-time type "
            f"introspection per pool connection: {held['steady_statements_per_s']:.1f} and "
            f"{held['steady_reads_per_s']:.1f})",
            f"worker CPU {cpu.get('app', 0):.1f}% of a core; postgres "
            f"{cpu.get('postgres', 0):.1f}%; client {cpu.get('load generator', 0):.1f}%",
            f"{held['statements_per_s'] / max(1, held['opened']):.4f} statements/s per stream",
            f"counted in PostgreSQL's statement log (log_statement = all), database "
            f"`{held['database']}`: {statements or 'none'} in the window; opening cost "
            f"{held['statements_per_open']:.1f} statements per stream ({opening}); "
            f"{held['opened']} of {held['streams']} opened in {held['open_seconds']:.1f} s "
            f"({refused}), {held['still_open']} still open at the end, "
            f"{held['events_during']} events and {held['comments_during']} comments during "
            "the hold",
        ])  # fmt: skip
    if not rows:
        return []
    lines = [
        "## Quote, media route, rate limit, live-update streams",
        "",
        "*Quote*: the create's body to `POST /api/videos/quote` (no Idempotency-Key, limits "
        "off) by wrk at c=32 on each API server, beside that server's create at c=32. "
        "*Media*: a file put into the 1-worker server's MEDIA_DIR (local store) and read "
        "through a signed `/media/{key}?exp=&sig=` URL with httpx, whole and in 1 MiB ranges "
        "(bench/media.py's reads); CPU is the worker's. *Rate limit*: creates at c=32 on a "
        "second 1-worker server with RATE_LIMIT_CREATES_PER_MINUTE (and _QUOTES_) at 10⁹, "
        "so every create takes a token and none is refused, and on the 1-worker server "
        "without the limit, in the order on, off, off, on (each figure over its two runs); "
        "the difference in CPU µs per create is what the limit costs. *Live updates*: "
        "streams opened by one asyncio client (one socket each, on its own queued video, 5 "
        "per user) on a fresh 1-worker server, then held with no video changing; statements "
        "are the lines PostgreSQL's statement log got for the bench database during the "
        "hold (the broker's one read of all watched rows per EVENTS_POLL_INTERVAL_S and its "
        "transaction), CPU is % of one core over the hold.",
        "",
        "| figure | measured | beside it | ratio | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return [*lines, ""]


def reads_section(data: dict[str, Any]) -> list[str]:
    reads = data["reads"]
    sizes = [k for k in reads if isinstance(reads[k], dict) and "list" in reads[k]]
    if len(sizes) != 2:
        return []
    small, large = sizes
    tables = {size: reads.get(f"table {size}", {}) for size in sizes}
    described = "; ".join(
        f"{size}: {t.get('videos', 0):,} videos, {t.get('ledger', 0):,} ledger rows, database "
        f"{t.get('database', '?')}, seeded in {t.get('seed_seconds', '?')} s"
        for size, t in tables.items()
    )
    lines = [
        f"## Reads with {small} and {large} videos in the table (one client, c=1)",
        "",
        "Two databases, one per size, each served by its own 1-worker server; the servers are "
        "measured in alternating rounds and each figure is the round with the lowest p50. "
        "All videos belong to the user reading (the worst case for per-user queries), with "
        f"one ledger row per video plus a refund for every 20th (failed) one. {described}.",
        "",
        f"| request | {small}: API p50 / p95 / p99 ms | {small}: SQL alone p50 "
        f"| {large}: API p50 / p95 / p99 ms | {large}: SQL alone p50 "
        f"| {large} ÷ {small} (API p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    paths = {
        "list": "GET /api/videos?limit=20",
        "list ?status=failed": "GET /api/videos?limit=20&status=failed",
        "balance": "GET /api/credits (balance + 50 ledger rows)",
    }
    for name, path in paths.items():
        a, b = reads[small].get(name), reads[large].get(name)
        sa, sb = reads[small].get(f"{name} SQL"), reads[large].get(f"{name} SQL")
        if a and b:
            lines.append(
                f"| {path} | {lat(a)} | {ms(sa.p50) if sa else '–'} | {lat(b)} "
                f"| {ms(sb.p50) if sb else '–'} | {b.p50 / a.p50:.2f}× |"
            )
    lines += [
        "",
        "SQL alone = the statements the app sends for that request (pool pre-ping, key lookup, "
        "the page, the balance) over raw asyncpg, one client.",
    ]
    return [*lines, ""]


def backup_section(data: dict[str, Any]) -> list[str]:
    backup = data["backup"]
    if not backup:
        return []
    bare = backup.get("pg_dump | gzip", {}).get("seconds")
    lines = [
        "## Backup of the read database (the large size)",
        "",
        "Same pg_dump options for all (`--format=plain --clean --if-exists --no-owner "
        "--no-privileges`); `vidgen backup create` is the CLI end to end (Python start-up, "
        "free-space check, exact row counts for the metadata, pg_dump → zlib level 3 → "
        "sha256 → fsync). Best of the runs, after one pg_dump to warm the cache.",
        "",
        "| command | seconds | runs | size | ÷ pg_dump \\| gzip |",
        "|---|---:|---|---:|---:|",
    ]
    for name, entry in backup.items():
        runs = ", ".join(f"{s:.1f}" for s in entry["runs"])
        ratio = f"{entry['seconds'] / bare:.2f}×" if bare else "–"
        label = name.replace("|", "\\|")
        size = f"{entry['bytes'] / 1e6:,.0f} MB" if entry["bytes"] else "–"
        lines.append(f"| `{label}` | {entry['seconds']:.1f} | {runs} | {size} | {ratio} |")
    return [*lines, ""]


def rss_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## Peak RSS per worker (VmHWM, MB = 10⁶ bytes, after all the load above)",
        "",
        "| server | per worker |",
        "|---|---|",
    ]
    for label, values in data["rss"].items():
        lines.append(f"| {label} | {', '.join(f'{v:.0f} MB' for v in values)} |")
    return [*lines, ""]


# --- files ------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    if isinstance(value, RunResult):
        return value.to_json()
    if isinstance(value, Profile):
        return value.markdown("profile")
    if isinstance(value, CallProfile):
        return value.markdown()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    create = data["create"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"floor": "k", "api-1w": "tab:blue", "api-2w": "tab:orange"}
    names = {"floor": "floor (raw asyncpg)", "api-1w": "API, 1 worker", "api-2w": "API, 2 workers"}
    for label, color in styles.items():
        runs = create.get(label, [])
        if not runs:
            continue
        xs = [r.concurrency for r in runs]
        left.plot(xs, [r.rps for r in runs], "o-", color=color, label=names[label])
        right.plot(xs, [r.p50 for r in runs], "o-", color=color, label=f"{names[label]} p50")
        right.plot(xs, [r.p99 for r in runs], "s--", color=color, label=f"{names[label]} p99")
    replay = at(create.get("replay", []), 32)
    if replay:
        left.plot([32], [replay.rps], "D", color="tab:green", label="replay of the API's SQL")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 8, 32, 64], ["1", "8", "32", "64"])
        axis.set_xlabel("concurrent clients")
        axis.grid(True, which="both", alpha=0.3)
    left.set_ylabel("creates per second")
    left.set_ylim(bottom=0)
    left.set_title("POST /api/videos throughput")
    right.set_yscale("log")
    right.set_ylabel("latency, ms")
    right.set_title("latency (p50 solid, p99 dashed)")
    left.legend(fontsize=8)
    right.legend(fontsize=7, ncol=2)
    meta = data["meta"]
    fig.suptitle(f"vidgen create path, {meta['cpus']} CPUs, {meta['date']} ({meta['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(data: dict[str, Any], text: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    quick = data["meta"]["mode"] == "quick"
    suffix = "-quick" if quick else ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    latest = f"latest{suffix}"
    written = []
    for name in (f"{stamp}{suffix}", latest):
        png = out / f"{name}.png"
        plot(data, png)
        (out / f"{name}.md").write_text(text.replace(f"({latest}.png)", f"({png.name})"))
        written += [out / f"{name}.md", png]
    (out / f"{latest}.json").write_text(json.dumps(to_json(data), indent=2, default=str) + "\n")
    written.append(out / f"{latest}.json")
    return written
