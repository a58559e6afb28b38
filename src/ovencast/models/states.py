"""The states of model governance, one `StrEnum` each, shared by the tables (stored as
their values, with a CHECK constraint), the services, the API schemas and the CLI:
a job's activation policy, a version's standing, a forecast row's role and how the
promotion gate decided (docs/decisions/008-model-governance.md)."""

from __future__ import annotations

from enum import StrEnum


class ActivationPolicy(StrEnum):
    """What a training job does with each new version: `if-better` (the default) makes it
    active only when it is not worse than the active version on the same backtest
    windows of the new data (training/promotion.py), else keeps it as a challenger;
    `always` makes it active; `never` keeps it as a challenger."""

    IF_BETTER = "if-better"
    ALWAYS = "always"
    NEVER = "never"


class Standing(StrEnum):
    """A version's place: the one `active` version of a product (the champion, which
    forecasts answer with), `challenger`s (forecast in shadow beside it and compared),
    or `retired` (kept for roll-back only)."""

    ACTIVE = "active"
    CHALLENGER = "challenger"
    RETIRED = "retired"


class Verdict(StrEnum):
    """How the promotion gate decided about a new version: `promoted` (not worse than
    the active one beyond the tolerance), `kept` (worse: a challenger), `first` (no
    active version to compare with), `uncompared` (the active version could not be
    replayed on the new data, so the new one replaces it), `forced` (policy `always`),
    `held` (policy `never`), `cancelled` (its job was cancelled: kept, not active)."""

    PROMOTED = "promoted"
    KEPT = "kept"
    FIRST = "first"
    UNCOMPARED = "uncompared"
    FORCED = "forced"
    HELD = "held"
    CANCELLED_JOB = "job-cancelled"


class ForecastRole(StrEnum):
    """A stored forecast row's model: the product's `champion` (what the run answered
    with) or a `challenger` forecasting in shadow."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


class RunTrigger(StrEnum):
    """Who saved a forecast run: the command line, the API, or a tenant's schedule."""

    CLI = "cli"
    API = "api"
    SCHEDULE = "schedule"
