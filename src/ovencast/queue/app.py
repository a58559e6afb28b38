"""The procrastinate app. Tasks live on a blueprint (`queue.tasks`) so that the same task
names are known to the API (which only enqueues, through SQL in its own transaction) and
to the workers (which run them)."""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from ovencast.db.urls import libpq_conninfo
from ovencast.settings import Settings


def make_app(settings: Settings) -> App:
    from ovencast.queue.tasks import blueprint
    from ovencast.schedules import tasks as schedule_tasks

    connector = PsycopgConnector(conninfo=libpq_conninfo(settings.resolved_database_url))
    app = App(connector=connector)
    app.add_tasks_from(blueprint, namespace="ovencast")
    # Scheduled work (schedules/tasks.py): its tasks and the periodic check of due tenants.
    app.add_tasks_from(schedule_tasks.blueprint, namespace="ovencast")
    schedule_tasks.register_periodic(app, settings)
    return app
