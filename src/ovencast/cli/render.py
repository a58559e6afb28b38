"""How the CLI shows things: rich tables, the training progress bar, CSV/JSON output."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ovencast.db.tables import ModelVersion, TrainingJob, TrainingRun
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.validation import ValidationReport

STATUS_STYLE = {"trained": "green", "failed": "red", "timed_out": "yellow",
                "succeeded": "green", "partial": "yellow"}


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def validation_summary(console: Console, report: ValidationReport,
                       alignment: AlignmentReport) -> None:
    for issue in report.issues:
        colour = "red" if issue.level == "error" else "yellow"
        who = f"{issue.product}: " if issue.product else ""
        console.print(f"[{colour}]{issue.level}[/] {who}{issue.message}", highlight=False)
    used = ", ".join(alignment.used_regressors) or "none"
    console.print(f"regressors used: {used}", highlight=False)
    for note in alignment.notes:
        console.print(f"[dim]alignment: {note}[/]", highlight=False)


def validation(console: Console, report: ValidationReport, alignment: AlignmentReport) -> None:
    table = Table(title="Validation", title_justify="left")
    for column in ("product", "days", "first", "last", "missing", "zero %", "mean",
                   "class", "errors", "warnings"):
        table.add_column(column, justify="right" if column not in ("product", "class")
                         else "left")
    for product, stats in sorted(report.products.items()):
        issues = report.issues_for(product)
        table.add_row(
            product, str(stats.n_days), fmt(stats.first_date), fmt(stats.last_date),
            str(stats.n_missing_dates), fmt(stats.zero_ratio * 100, 1), fmt(stats.mean, 1),
            str(stats.product_class),
            str(sum(1 for i in issues if i.level == "error")),
            str(sum(1 for i in issues if i.level == "warning")))
    console.print(table)
    validation_summary(console, report, alignment)


class TrainingProgress:
    """A rich progress bar fed by worker events (called from a background thread)."""

    def __init__(self, console: Console, products: Sequence[str], *, enabled: bool = True
                 ) -> None:
        self._enabled = enabled and bool(products)
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}
        self._done, self._total = 0, len(products)
        self._progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.description}"), console=console,
            transient=False)
        self._task = self._progress.add_task("", total=len(products))

    def __enter__(self) -> TrainingProgress:
        if self._enabled:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._enabled:
            self._progress.update(self._task, description="")
            self._progress.stop()

    def on_event(self, product: str, event: str, fields: dict[str, Any]) -> None:
        with self._lock:
            if event == "started":
                self._running[product] = "fitting"
            elif event == "trial":
                self._running[product] = f"trial {fields.get('n')}/{fields.get('total')}"
            elif event in ("finished", "failed", "timed_out"):
                self._running.pop(product, None)
                self._progress.advance(self._task)
                self._done += 1
                # One line per product, so that a log or a pipe (where the bar does not
                # animate) shows progress too.
                if event == "finished":
                    wape = (fields.get("metrics") or {}).get("wape")
                    self._progress.console.print(
                        f"[green]trained[/] {product}: {fields.get('family')}, holdout "
                        f"WAPE {fmt(wape)} ({self._done}/{self._total})", highlight=False)
                else:
                    self._progress.console.print(
                        f"[red]{event}[/] {product}: {fields.get('reason', '')} "
                        f"({self._done}/{self._total})", highlight=False)
            running = ", ".join(f"{p} ({s})" for p, s in sorted(self._running.items()))
            self._progress.update(self._task, description=running)


def training_result(console: Console, job: TrainingJob, runs: Sequence[TrainingRun],
                    versions: dict[int, ModelVersion] | None = None) -> None:
    table = Table(title=f"Training job {job.id}: {job.status}", title_justify="left")
    for column in ("product", "class", "status", "seconds", "reason"):
        table.add_column(column)
    for run in runs:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(run.product, run.product_class or "-", f"[{style}]{run.status}[/]",
                      fmt(run.duration_s, 1), run.reason or "")
    console.print(table)


def model_versions(console: Console, versions: Sequence[ModelVersion]) -> None:
    table = Table(title="Model versions (metrics on the last 28 days held out)",
                  title_justify="left")
    for column in ("product", "version", "active", "family", "class", "trials", "WAPE",
                   "MASE", "MAPE", "bias", "naive WAPE", "data", "params", "sha256"):
        table.add_column(column)
    for v in versions:
        params = {k: (round(val, 4) if isinstance(val, float) else val)
                  for k, val in v.params.items()
                  if k not in ("country", "subdivision") and val not in (None, "auto")}
        search = v.details.get("search") or {}
        trials = (f"{search['n_trials']}/{search['trial_budget']}"
                  + (" warm" if search.get("warm_started") else "")) if search else "-"
        table.add_row(
            v.product, str(v.version), "*" if v.is_active else "", v.family,
            str(v.details.get("product_class", "-")), trials,
            fmt(v.metrics.get("wape")), fmt(v.metrics.get("mase")),
            fmt(v.metrics.get("mape")), fmt(v.metrics.get("bias")),
            fmt(v.baseline_metrics.get("wape")), f"{v.data_start}..{v.data_end}",
            json.dumps(params, default=str) if params else "-", v.sha256[:12])
    console.print(table)


def forecasts(console: Console, err_console: Console, results: Sequence[Any],
              output: str) -> None:
    frames = [r.frame for r in results if r.frame is not None]
    for r in results:
        if r.error:
            err_console.print(f"[bold red]error:[/] {r.product}: {r.error}", highlight=False)
    if not frames:
        return
    frame = pd.concat(frames, ignore_index=True)
    if output == "csv":
        print(frame.to_csv(index=False, float_format="%.3f"), end="")
    elif output == "json":
        rows = [{"date": str(d), "product": p, "forecast": round(float(f), 3)}
                for d, p, f in frame.itertuples(index=False)]
        print(json.dumps(rows, indent=1))
    else:
        wide = frame.pivot(index="date", columns="product", values="forecast")
        table = Table(title="Forecast", title_justify="left")
        table.add_column("date")
        for product in wide.columns:
            table.add_column(str(product), justify="right")
        for day, row in wide.iterrows():
            table.add_row(str(day), *(fmt(v, 1) for v in row))
        console.print(table)
