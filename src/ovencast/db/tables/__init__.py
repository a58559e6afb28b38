"""ORM tables, one file per table. Importing this package registers them all on
`Base.metadata` (Alembic's env.py relies on that)."""

from ovencast.db.tables.api_key import ApiKey
from ovencast.db.tables.dataset_import import DatasetImport
from ovencast.db.tables.dataset_import_change import DatasetImportChange
from ovencast.db.tables.forecast_row import ForecastRow
from ovencast.db.tables.forecast_run import ForecastRun
from ovencast.db.tables.model_version import ModelVersion
from ovencast.db.tables.regressor_observation import RegressorObservation
from ovencast.db.tables.sales_observation import SalesObservation
from ovencast.db.tables.tenant import Tenant
from ovencast.db.tables.tenant_schedule import TenantSchedule
from ovencast.db.tables.training_job import TrainingJob
from ovencast.db.tables.training_run import TrainingRun

__all__ = [
    "ApiKey",
    "DatasetImport",
    "DatasetImportChange",
    "ForecastRow",
    "ForecastRun",
    "ModelVersion",
    "RegressorObservation",
    "SalesObservation",
    "Tenant",
    "TenantSchedule",
    "TrainingJob",
    "TrainingRun",
]
