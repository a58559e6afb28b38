"""What a job stores only while it runs, deleted once every run has ended (after
`jobs.service.mark_job_artifacts_retired` has committed): the tenant stage's
global-models artifact and the service shape's data snapshot."""

from __future__ import annotations

from ovencast.db.tables import TrainingJob
from ovencast.settings import Settings
from ovencast.training import snapshot, tenant_stage


def retire(job: TrainingJob, settings: Settings) -> None:
    """Idempotent; a failure only leaves files behind (logged)."""
    tenant_stage.retire(job, settings)
    snapshot.retire(job, settings)
