"""The tenant stage's boosters trained on a Dask cluster (`DASK_SCHEDULER_ADDRESS`), with
LightGBM's own Dask interface (`lightgbm.DaskLGBMRegressor`: data-parallel training, one
LightGBM process per Dask worker, joined by LightGBM's socket network). What comes back
is LightGBM's text model, stored as every booster is (no pickle); the features are built
in the preparing process (`lightgbm_global._Matrix`) and the rows of each booster are
scattered to the workers in one part per worker. docs/decisions/012-scale.md."""

from __future__ import annotations

import importlib
import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovencast.forecasting.families.lightgbm_global import PRODUCT_FEATURE

# LightGBM's Dask interface sets each worker's threads itself (from the worker's
# threads); the single thread of the local stage (docs/decisions/004) is not for a
# cluster's workers.
LOCAL_ONLY_PARAMS = ("num_threads",)
MIN_ROWS_PER_PART = 500  # smaller parts are not worth a worker's network round


@dataclass(frozen=True)
class DaskBoosterTrainer:
    """A `lightgbm_global.BoosterTrainer` on the cluster `client` is connected to."""

    client: Any  # distributed.Client

    def __call__(self, features: np.ndarray, target: np.ndarray, *,
                 feature_names: Sequence[str], params: Mapping[str, Any], rounds: int
                 ) -> str:
        from lightgbm import DaskLGBMRegressor

        da: Any = importlib.import_module("dask.array")  # untyped: Any at our boundary

        workers = len(self.client.scheduler_info()["workers"])
        parts = max(1, min(workers, len(target) // MIN_ROWS_PER_PART))
        bounds = np.linspace(0, len(target), parts + 1).astype(int)
        pieces = [(features[a:b], target[a:b]) for a, b in itertools.pairwise(bounds)]
        # One part per worker, spread over the workers (scattered, not in the graph).
        # hash=False: random keys. Keys hashed from the content would be the same for the
        # two members' targets at one cut-off, and cancelling one booster's parts below
        # could then cancel the next one's ("lost dependencies", seen in CI).
        x_parts = self.client.scatter([x for x, _ in pieces], broadcast=False, hash=False)
        y_parts = self.client.scatter([y for _, y in pieces], broadcast=False, hash=False)
        x = da.concatenate([da.from_delayed(f, shape=p[0].shape, dtype=p[0].dtype)
                            for f, p in zip(x_parts, pieces, strict=True)])
        y = da.concatenate([da.from_delayed(f, shape=p[1].shape, dtype=p[1].dtype)
                            for f, p in zip(y_parts, pieces, strict=True)])
        options = {k: v for k, v in params.items() if k not in LOCAL_ONLY_PARAMS}
        model = DaskLGBMRegressor(client=self.client, n_estimators=rounds, **options)
        with warnings.catch_warnings():
            # The sklearn wrapper always passes n_jobs, which the Dask interface replaces
            # by each worker's threads, and says so on every fit.
            warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
            model.fit(x, y, feature_name=list(feature_names),
                      categorical_feature=[PRODUCT_FEATURE])
        self.client.cancel([*x_parts, *y_parts])
        return str(model.booster_.model_to_string())


CONNECT_TIMEOUT_S = 10
"""How long the stage waits for the scheduler; unreachable, the stage fails (the job
goes on with lightgbm fitted per product, and says so)."""


@contextmanager
def dask_trainer(address: str | None) -> Iterator[DaskBoosterTrainer | None]:
    """A trainer connected to the scheduler at `address` while the block runs; None (the
    local stage) when no address is set."""
    if not address:
        yield None
        return
    client_class: Any = importlib.import_module("distributed").Client

    # The process's default client while the stage trains: LightGBM's Dask interface
    # waits on its parts through the default client, whatever client it was given.
    with client_class(address, timeout=CONNECT_TIMEOUT_S) as client:
        yield DaskBoosterTrainer(client)
