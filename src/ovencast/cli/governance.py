"""How the CLI shows model governance: versions with their standing and the promotion
gate's comparison, jobs, saved forecast runs, realised accuracy, champion against
challenger, scheduled runs. Every listing as a rich table, CSV or JSON (`--format`):
tables for people, CSV and JSON (one flat record per row, the same keys) for scripts."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ovencast.models.states import Verdict

if TYPE_CHECKING:  # cheap imports for every command (cli/main.py's docstring)
    from ovencast.accuracy.service import AccuracyReport, ChallengerComparison, Promoted
    from ovencast.db.tables import (
        ModelVersion,
        Tenant,
        TenantSchedule,
        TrainingJob,
        TrainingRun,
    )
    from ovencast.forecast_runs.service import SavedRun
    from ovencast.training.task import ProductOutcome

TABLE, CSV, JSON = "table", "csv", "json"
# Verdicts `ovencast train` does not mention: the version simply became the active one.
SHOWN_AS_ACTIVE = frozenset({Verdict.PROMOTED, Verdict.FIRST, Verdict.FORCED})


# -- output in three formats -------------------------------------------------------------
def _cell(value: Any, *, flat: bool = True) -> Any:
    """A value as CSV/JSON carries it: NaN as empty/null, dates ISO, lists joined with
    "," (CSV and tables; JSON keeps them lists)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if flat else [_cell(v) for v in value]
    return value


def _text(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(_cell(value))


def records(console: Console, rows: Sequence[dict[str, Any]], output: str, *,
            title: str, columns: Sequence[str] | None = None, empty: str = "nothing yet",
            caption: str | None = None) -> None:
    """`rows` (flat dicts, the same keys) as a table, CSV or JSON on stdout. CSV cells
    that a spreadsheet would run as a formula are quoted as text (render.spreadsheet_safe)."""
    from ovencast.cli.render import spreadsheet_safe

    keys = list(columns or (rows[0].keys() if rows else []))
    if output == JSON:
        print(json.dumps([{k: _cell(r.get(k), flat=False) for k in keys} for r in rows],
                         indent=1))
        return
    if output == CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(keys)
        for row in rows:
            writer.writerow([spreadsheet_safe(_cell(row.get(k))) for k in keys])
        print(buffer.getvalue(), end="")
        return
    if not rows:
        console.print(empty, highlight=False)
        return
    table = Table(title=title, title_justify="left", caption=caption,
                  caption_justify="left")
    for key in keys:
        table.add_column(key.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_text(row.get(k)) for k in keys))
    console.print(table)


# -- model versions ----------------------------------------------------------------------
def version_record(v: ModelVersion) -> dict[str, Any]:
    promotion = v.promotion or {}
    comparison = promotion.get("comparison") or {}
    return {
        "product": v.product, "version": v.version, "standing": str(v.standing),
        "family": v.family, "model": (v.details.get("selection") or {}).get("chosen")
        or v.family, "class": v.details.get("product_class"),
        "wape": v.metrics.get("wape"), "mase": v.metrics.get("mase"),
        "bias": v.metrics.get("bias"), "naive_wape": v.baseline_metrics.get("wape"),
        "holdout_days": v.holdout_days, "data_end": v.data_end, "created_at": v.created_at,
        "verdict": promotion.get("verdict"),
        "compared_with": promotion.get("active_version"),
        "gate_wape": comparison.get("new_wape"),
        "active_gate_wape": comparison.get("active_wape"),
        "promotion": promotion.get("reason"), "sha256": v.sha256,
    }


def model_versions(console: Console, versions: Sequence[ModelVersion], output: str) -> None:
    """CSV/JSON: one record per version (`version_record`). The table is render's, with
    the standing and the promotion gate's verdict under it."""
    from ovencast.cli.render import model_versions as table

    if output != TABLE:
        records(console, [version_record(v) for v in versions], output, title="")
        return
    table(console, versions)
    decided = [v for v in versions if v.promotion]
    if decided or any(v.is_challenger for v in versions):
        console.print("standing and promotion gate (challengers forecast in shadow):",
                      highlight=False)
        for v in decided or versions:
            reason = (v.promotion or {}).get("reason", "")
            console.print(f"  {v.product} v{v.version}: {v.standing}"
                          + (f"; {reason}" if reason else ""), highlight=False,
                          soft_wrap=True)


def promotions(console: Console, outcomes: Sequence[ProductOutcome]) -> None:
    """After `ovencast train`: what the gate decided about each version that is not the
    new active one (a challenger, or kept), with its comparison."""
    for outcome in outcomes:
        promotion = (outcome.details or {}).get("promotion") or {}
        if promotion and promotion.get("verdict") not in SHOWN_AS_ACTIVE:
            console.print(f"[yellow]{outcome.product}[/]: version {outcome.version}: "
                          f"{promotion['reason']}", highlight=False, soft_wrap=True)


# -- jobs --------------------------------------------------------------------------------
def job_records(jobs: Sequence[TrainingJob], counts: dict[int, dict[str, int]]
                ) -> list[dict[str, Any]]:
    from ovencast.jobs.states import RunStatus

    found = []
    for job in jobs:
        runs = counts.get(job.id, {})
        found.append({"job": job.id, "status": str(job.status),
                      "activation": str(job.activation), "created_at": job.created_at,
                      "started_at": job.started_at, "finished_at": job.finished_at,
                      "models": job.models or [], "until": job.until,
                      "products": sum(runs.values()),
                      RunStatus.TRAINED.value: runs.get(RunStatus.TRAINED, 0),
                      "error": job.error})
    return found


def run_records(runs: Sequence[TrainingRun]) -> list[dict[str, Any]]:
    return [{"product": r.product, "class": r.product_class, "status": str(r.status),
             "seconds": r.duration_s, "reason": r.reason,
             "model_version_id": r.model_version_id} for r in runs]


# -- forecast runs -----------------------------------------------------------------------
def saved_run(err_console: Console, saved: SavedRun) -> None:
    run = saved.run
    shadow = [f"{r.product} v{r.version}" for r in saved.shadow if r.frame is not None]
    refused = [f"{r.product} v{r.version}: {r.error}" for r in saved.shadow if r.error]
    err_console.print(
        f"saved forecast run {run.id}: {len(run.products)} products, {run.days} days from "
        f"{run.start} (origin {run.origin}); challengers in shadow: "
        f"{', '.join(shadow) or 'none'}", highlight=False, soft_wrap=True)
    for line in refused:
        err_console.print(f"[yellow]shadow forecast refused:[/] {line}", highlight=False)


# -- realised accuracy -------------------------------------------------------------------
def accuracy_records(report: AccuracyReport) -> list[dict[str, Any]]:
    """One record per product (all versions, lead "all", the champion's rows), then per
    product, version and lead time."""
    found: list[dict[str, Any]] = []
    for product in report.products:
        found.append({"product": product.product, "version": None, "role": "all",
                      "lead": "all", **product.overall.to_dict(),
                      "backtest_wape": product.backtest_wape,
                      "recent_wape": product.recent_wape, "drift": bool(product.drift)})
        for version in product.versions:
            for lead, score in (("all", version.overall), *version.by_lead.items()):
                found.append({"product": product.product, "version": version.version,
                              "role": str(version.role), "lead": lead, **score.to_dict(),
                              "backtest_wape": None, "recent_wape": None, "drift": None})
    return found


def accuracy(console: Console, err_console: Console, report: AccuracyReport,
             output: str) -> None:
    for warning in report.warnings:
        err_console.print(f"[bold yellow]drift:[/] {warning}", highlight=False,
                          soft_wrap=True)
    rows = accuracy_records(report)
    columns = ["product", "version", "role", "lead", "n_days", "wape", "naive_wape",
               "bias", "coverage", "backtest_wape", "recent_wape", "drift"]
    records(console, rows, output, columns=columns,
            title=f"Realised accuracy of {report.tenant}'s saved forecasts",
            caption="P10-P90 coverage: share of days inside the band (80 % expected); "
                    "naive: the weekly seasonal naive forecast from the same sales",
            empty=f"no saved forecast of tenant {report.tenant!r} can be scored yet "
                  f"({report.stored_rows} stored rows; save one with `ovencast forecast "
                  "--save`, then import the sales of its dates)")


# -- champion against challenger ---------------------------------------------------------
def comparisons(console: Console, found: Sequence[ChallengerComparison],
                promoted: Sequence[Promoted], output: str, *, tenant: str) -> None:
    rows = [c.to_dict() for c in found]
    columns = ["product", "challenger_version", "standing", "champion_versions",
               "first_day", "last_day", "n_days", "champion_wape", "challenger_wape",
               "statistic", "p_value", "significant", "winner", "verdict"]
    if output == TABLE:  # narrower: the days as one span, the test as its verdict
        rows = [{"product": c.product,
                 "challenger": f"v{c.challenger_version} ({c.standing or 'gone'})",
                 "champion": ",".join(f"v{v}" for v in c.champion_versions) or "-",
                 "days": f"{c.test.n_days}: {c.first_day}..{c.last_day}"
                 if c.first_day else "0", "champion_wape": c.test.champion_wape,
                 "challenger_wape": c.test.challenger_wape, "DM": c.test.statistic,
                 "verdict": c.test.verdict} for c in found]
        columns = list(rows[0]) if rows else []
    records(console, rows, output, columns=columns,
            title=f"Champion against challenger ({tenant}): paired test on daily "
                  "absolute errors (Diebold-Mariano)",
            empty=f"no challenger of tenant {tenant!r} has forecast in shadow on days "
                  "with known sales yet")
    target = console if output == TABLE else Console(stderr=True)
    for p in promoted:
        target.print(f"promoted {p.product}: version {p.version} is now active (was "
                     f"{p.previous}); {p.comparison.test.verdict}", highlight=False)


def schedule(console: Console, tenant: Tenant, row: TenantSchedule | None) -> None:
    """The schedule, its next time and its last run's outcome, times in the tenant's
    time zone (the cron expression's)."""
    from ovencast.db.base import utcnow
    from ovencast.schedules.service import next_run

    if row is None:
        console.print(f"tenant {tenant.name!r} has no schedule", highlight=False)
        return
    upcoming = next_run(row, tenant, now=utcnow())

    def local(moment: datetime | None) -> str:
        return "-" if moment is None else _text(moment.astimezone(upcoming.at.tzinfo))

    console.print(
        f"tenant {tenant.name!r}: cron {row.cron!r} in {tenant.time_zone}, forecast "
        f"{row.days} days, models {','.join(row.models or []) or 'auto'}, activation "
        f"{row.activation}; next run {_text(upcoming.at)}"
        f"{' (due now)' if upcoming.due_now else ''}; last run: training job "
        f"{row.last_job_id or '-'}, forecast run {row.last_run_id or '-'}, finished "
        f"{local(row.last_finished_at)}, error {row.last_error or '-'}", highlight=False,
        soft_wrap=True)
