"""How the CLI shows things: rich tables, the training progress bar, CSV/JSON output."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ovencast.jobs.states import JobStatus, RunStatus

if TYPE_CHECKING:  # cheap imports for every command (cli/main.py's docstring)
    from ovencast.db.tables import DatasetImport, ModelVersion, TrainingJob, TrainingRun
    from ovencast.events.progress import ProductEvent
    from ovencast.forecasting.features import AlignmentReport
    from ovencast.forecasting.validation import ValidationReport
    from ovencast.forecasts.service import TenantForecast
    from ovencast.keys.service import KeyListing
    from ovencast.training.prepare import PreparedJob

STATUS_STYLE: dict[str, str] = {
    RunStatus.TRAINED: "green", RunStatus.FAILED: "red", RunStatus.TIMED_OUT: "yellow",
    RunStatus.REFUSED: "yellow",
    JobStatus.SUCCEEDED: "green", JobStatus.PARTIAL: "yellow", JobStatus.FAILED: "red"}


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


def global_models(console: Console, record: dict[str, Any] | None) -> None:
    """The tenant stage's line: which global model, how many boosters, what it cost."""
    if not record:
        return
    adopted = record.get("adopted_cutoffs", 0)
    shared = (f"; {adopted} more cut-off{'s' if adopted != 1 else ''} adopt"
              f"{'s' if adopted == 1 else ''} an earlier one") if adopted else ""
    console.print(f"global model: {record['family']} for {record['products']} products, "
                  f"{len(record['cutoffs'])} boosters (one per training cut-off{shared}) in "
                  f"{record['seconds']:.1f} s", highlight=False)


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


class TrainingView:
    """The progress of `ovencast train` (a `training.embedded.TrainingObserver`): the
    validation summary once the job is prepared, then a rich progress bar fed by the
    products' events (called from a background thread), one line per finished product.
    Use as a context manager, so that the bar stops on any exit."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}
        self._done = self._total = 0
        self._progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.description}"), console=console,
            transient=False)
        self._task = self._progress.add_task("", total=0)
        self._started = False

    def __enter__(self) -> TrainingView:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.products_done()

    # -- TrainingObserver ---------------------------------------------------------------
    def prepared(self, prepared: PreparedJob) -> None:
        if not self._enabled:
            return
        validation_summary(self._console, prepared.validation, prepared.alignment)
        global_models(self._console, prepared.global_models)
        self._total = len(prepared.tasks)
        self._progress.update(self._task, total=self._total)
        if self._total:
            self._progress.start()
            self._started = True

    def product_event(self, event: ProductEvent) -> None:
        from ovencast.jobs.states import RunStatus, Step

        with self._lock:
            product = event.product
            if event.event is Step.STARTED:
                self._running[product] = "fitting"
            elif event.event is Step.TRIAL:
                self._running[product] = f"trial {event.n}/{event.total}"
            elif event.event is Step.BACKTEST:
                self._running[product] = (f"backtest {event.family} "
                                          f"{event.n}/{event.total}")
            elif event.event in (Step.FINISHED, RunStatus.FAILED, RunStatus.TIMED_OUT):
                self._running.pop(product, None)
                self._progress.advance(self._task)
                self._done += 1
                # One line per product, so that a log or a pipe (where the bar does not
                # animate) shows progress too.
                if self._enabled:
                    self._progress.console.print(self._line(event), highlight=False)
            running = ", ".join(f"{p} ({s})" for p, s in sorted(self._running.items()))
            self._progress.update(self._task, description=running)

    def products_done(self) -> None:
        if self._started:
            self._progress.update(self._task, description="")
            self._progress.stop()
            self._started = False

    def _line(self, event: ProductEvent) -> str:
        from ovencast.events.progress import Finished

        count = f"({self._done}/{self._total})"
        if isinstance(event, Finished):
            model = event.model or event.family
            return (f"[green]trained[/] {event.product}: {model}, holdout WAPE "
                    f"{fmt(event.metrics.get('wape'))} {count}")
        reason = getattr(event, "reason", None) or ""
        return f"[red]{event.event}[/] {event.product}: {reason} {count}"


def training_result(console: Console, job: TrainingJob, runs: Sequence[TrainingRun]
                    ) -> None:
    table = Table(title=f"Training job {job.id}: {job.status}", title_justify="left")
    for column in ("product", "class", "status", "seconds", "reason"):
        table.add_column(column)
    for run in runs:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(run.product, run.product_class or "-", f"[{style}]{run.status}[/]",
                      fmt(run.duration_s, 1), run.reason or "")
    console.print(table)


def training_jobs(console: Console, tenant: str, jobs: Sequence[TrainingJob],
                  counts: dict[int, dict[str, int]]) -> None:
    """One row per job, newest first: what it trained and how it ended."""
    if not jobs:
        console.print(f"tenant {tenant!r} has no training jobs yet", highlight=False)
        return
    table = Table(title=f"Training jobs of {tenant} (newest first)", title_justify="left")
    for column in ("job", "status", "created (UTC)", "seconds", "models", "until",
                   RunStatus.TRAINED.value, f"not {RunStatus.TRAINED}"):
        table.add_column(column, no_wrap=column in ("job", "status", "created (UTC)"))
    for job in jobs:
        runs = counts.get(job.id, {})
        seconds = ((job.finished_at - job.started_at).total_seconds()
                   if job.finished_at and job.started_at else None)
        others = ", ".join(f"{n} {status}" for status, n in sorted(runs.items())
                           if status != RunStatus.TRAINED)
        style = STATUS_STYLE.get(job.status, "")
        table.add_row(str(job.id), f"[{style}]{job.status}[/]" if style else job.status,
                      job.created_at.strftime("%Y-%m-%d %H:%M"), fmt(seconds, 1),
                      ",".join(job.models or []) or "auto", str(job.until or "-"),
                      f"{runs.get(RunStatus.TRAINED, 0)}/{sum(runs.values())}",
                      others or "-")
    console.print(table)
    console.print("one job's products and reasons: ovencast jobs --tenant "
                  f"{tenant} --job ID", highlight=False)


def model_versions(console: Console, versions: Sequence[ModelVersion]) -> None:
    """One row per version. The product, its metrics and the data's end are never cut:
    on a narrow terminal rich shortens the class, trials, params and checksum first."""
    table = Table(title="Model versions (metrics on the last days of the data held out: "
                  "28, fewer for a short history)", title_justify="left",
                  caption="* active version", caption_justify="left")
    widest = max((len(v.product) for v in versions), default=len("product"))
    kept = {"product": widest, "v": 3, "family": 8, "WAPE": 5, "MASE": 5, "MAPE": 5,
            "bias": 6, "naive\nWAPE": 5, "held\nout": 4, "data to": 10}
    for column in ("product", "v", "family", "class", "trials", "WAPE", "MASE", "MAPE",
                   "bias", "naive\nWAPE", "held\nout", "data to", "params", "sha256"):
        table.add_column(column, min_width=kept.get(column), no_wrap=column in kept)
    for v in versions:
        search = v.details.get("search") or {}
        trials = (f"{search['n_trials']}/{search['trial_budget']}"
                  + (" warm" if search.get("warm_started") else "")) if search else "-"
        table.add_row(
            v.product, f"{v.version}{' *' if v.is_active else ''}", v.family,
            str(v.details.get("product_class", "-")), trials,
            fmt(v.metrics.get("wape")), fmt(v.metrics.get("mase")),
            fmt(v.metrics.get("mape")), fmt(v.metrics.get("bias")),
            fmt(v.baseline_metrics.get("wape")),
            "-" if v.holdout_days is None else str(v.holdout_days), str(v.data_end),
            params_text(v.family, v.params), v.sha256[:12])
    console.print(table)
    # The leaderboards as lines under the table: the table is already as wide as a
    # terminal allows.
    boards = [(v, leaderboard_top(v.details)) for v in versions]
    if any(board != "-" for _, board in boards):
        console.print("backtest WAPE, top 3 (* chosen):", highlight=False)
        for v, board in boards:
            console.print(f"  {v.product} v{v.version}: {board}", highlight=False,
                          soft_wrap=True)


def api_keys(console: Console, keys: Sequence[KeyListing]) -> None:
    """One row per key: its id and the first characters of its secret, never the rest."""
    if not keys:
        console.print("no API keys (create one: ovencast keys create)", highlight=False)
        return
    table = Table(title="API keys", title_justify="left")
    for column in ("id", "key", "tenant", "role", "name", "created (UTC)", "last used (UTC)",
                   "revoked (UTC)"):
        table.add_column(column, no_wrap=column != "name")
    for listing in keys:
        row = listing.row
        table.add_row(str(row.id), listing.display, listing.tenant or "(every tenant)",
                      str(row.role), row.name or "-", _minute(row.created_at),
                      _minute(row.last_used_at), _minute(row.revoked_at))
    console.print(table)


def _minute(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def leaderboard_top(details: dict[str, Any], n: int = 3) -> str:
    """"*mstl_weekly .163, prophet .176, auto_ets .187": the n best backtested candidates
    (the chosen one marked *); for a version chosen without a backtest, why."""
    selection = details.get("selection") or {}
    if selection.get("basis") == "none":
        return f"none ({selection.get('reason', 'no backtest')})"
    if selection.get("basis") != "backtest":
        return "-"
    scored = [r for r in details.get("leaderboard") or [] if r.get("wape") is not None]
    rows = scored[:n] + [r for r in scored[n:] if r.get("chosen")]
    # The blend partner runs on fewer windows than the others (selection.partner_windows):
    # its WAPE is not comparable with theirs, so its line says on how many.
    most = max((len(r.get("windows") or ()) for r in scored), default=0)

    def windows_of(row: dict[str, Any]) -> str:
        count = len(row.get("windows") or ())
        return f" ({count} of {most} windows)" if 0 < count < most else ""

    text = ", ".join(f"{'*' if r.get('chosen') else ''}{r['family']} "
                     f"{fmt(r['wape']).removeprefix('0')}{windows_of(r)}" for r in rows) or "-"
    kept = selection.get("kept_preferred")
    if kept:  # selection.GLOBAL_PREFERENCE: why the chosen one is not the lowest
        won = kept.get("windows_won")  # selection.PREFER_WINDOW_SHARE
        why = (f"not more than {float(kept['margin']):.0%} better" if not won else
               f"needs more than {float(kept['margin']):.0%} better and most windows; "
               f"better in {won[0]} of {won[1]}")
        text += (f" ({kept['family']} kept over {kept['over']} "
                 f"{fmt(kept['over_wape']).removeprefix('0')}: {why})")
    return text


def params_text(family: str, params: dict[str, Any]) -> str:
    """Non-default params, compact; an ensemble as its weights (its members, in the same
    order, are named in the leaderboard lines under the table)."""
    if family == "ensemble":
        weights = "/".join(f"{w:.2f}".removeprefix("0") for w in params.get("weights") or [])
        return f"w {weights}" if weights else "-"
    shown = {k: (round(val, 4) if isinstance(val, float) else val)
             for k, val in params.items()
             if k not in ("country", "subdivision") and val not in (None, "auto")}
    return json.dumps(shown, default=str) if shown else "-"


FORECAST_DATE_HEADER = "%a\n%Y-%m-%d"


def forecasts(console: Console, err_console: Console, forecast: TenantForecast,
              output: str) -> None:
    """A tenant's forecast: refusals and notes on stderr, the rows on stdout as a table
    (products as rows, dates as columns, paged to the terminal's width: no cell is ever
    cut), CSV or JSON (columns: forecasts.service.COLUMNS)."""
    from ovencast.forecasts.service import COLUMNS, refusals_by_reason

    for error, products in refusals_by_reason(forecast.results).items():
        err_console.print(f"[bold red]error:[/] {', '.join(products)}: {error}",
                          highlight=False)
    for note in (*forecast.notes, *(n for r in forecast.results for n in r.notes)):
        err_console.print(f"[bold yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    frame = forecast.forecast
    if frame.empty:
        return
    if output == "csv":
        text_columns = frame[list(COLUMNS)].select_dtypes(include="object").columns
        safe = frame[list(COLUMNS)].assign(**{c: frame[c].map(spreadsheet_safe)
                                              for c in text_columns})
        print(safe.to_csv(index=False, float_format="%.3f"), end="")
    elif output == "json":
        rows = [{key: _json_value(value) for key, value in row.items()}
                for row in frame[list(COLUMNS)].to_dict(orient="records")]
        print(json.dumps(rows, indent=1))
    else:
        forecast_pages(console, frame)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (a product named "=HYPERLINK(...)"
    from an upload) gets a leading apostrophe: shown as text, never evaluated (OWASP's
    CSV injection advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def forecast_pages(console: Console, frame: Any) -> None:
    """Products as rows, dates as columns: a cell is the forecast over its P10-P90 band
    ("closed", "off-season", "not sold" instead on such days; a * marks a day whose
    regressors were filled in). As many dates per table as the console's width holds."""
    import pandas as pd

    cells = {(row.product, row.date): _cell(row) for row in frame.itertuples(index=False)}
    products = list(dict.fromkeys(frame["product"]))
    dates = sorted(set(frame["date"]))
    headers = {day: pd.Timestamp(day).strftime(FORECAST_DATE_HEADER) for day in dates}
    width = max([*(max(len(line) for line in c.split("\n")) for c in cells.values()),
                 *(len(line) for h in headers.values() for line in h.split("\n"))])
    product_width = max(len("product"), *(len(p) for p in products))
    # A rich table: each column is its width plus 2 of padding and 1 of border, + 1.
    per_page = max(1, (console.width - (product_width + 3) - 1) // (width + 3))
    for first in range(0, len(dates), per_page):
        page = dates[first:first + per_page]
        table = Table(title=f"Forecast {_span(page)} (P10-P90 below each forecast)",
                      title_justify="left", show_lines=True)
        table.add_column("product", min_width=product_width, no_wrap=True)
        for day in page:
            table.add_column(headers[day], justify="right", min_width=width, no_wrap=True)
        for product in products:
            table.add_row(product, *(cells.get((product, day), "-") for day in page))
        console.print(table)
    if (frame["fallback"] != "").any():
        console.print("* some inputs of that day were not supplied: they were filled in "
                      "from the calendar or the history (see the notes)", highlight=False)


def _cell(row: Any) -> str:
    if row.closed:
        return "closed"
    if row.off_season:  # the product is not offered: off-season, or a day off
        return "off-season" if row.note == "off-season" else "not sold"
    mark = "*" if row.fallback else ""
    band = "" if math.isnan(row.p10) else f"\n{row.p10:.0f}-{row.p90:.0f}"
    return f"{row.forecast:.0f}{mark}{band}"


def _span(days: Sequence[Any]) -> str:
    first, last = days[0], days[-1]
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def dataset_imports(console: Console, tenant: str, imports: Sequence[DatasetImport]) -> None:
    """One row per import, newest first: mode, and the stored rows it added (+),
    changed (~) and removed (-), of sales and of regressor values."""
    if not imports:
        console.print(f"tenant {tenant!r} has no imports yet", highlight=False)
        return
    table = Table(title=f"Imports of {tenant} (newest first)", title_justify="left")
    for column in ("import", "imported (UTC)", "mode", "sales rows", "sales + ~ -",
                   "regressor values + ~ -", "source"):
        table.add_column(column, no_wrap=column != "source")
    for record in imports:
        mode = str(record.mode) if record.mode else "-"
        if record.restores_import_id is not None:
            mode = f"restore of {record.restores_import_id}"
        history = record.mode is not None
        table.add_row(
            str(record.id), record.imported_at.strftime("%Y-%m-%d %H:%M"), mode,
            str(record.sales_rows),
            f"+{record.sales_added} ~{record.sales_changed} -{record.sales_removed}"
            if history else "no history",
            f"+{record.regressors_added} ~{record.regressors_changed} "
            f"-{record.regressors_removed}" if history else "-",
            record.source)
    console.print(table)
    console.print(f"undo one: ovencast imports restore --tenant {tenant} --id ID",
                  highlight=False)
