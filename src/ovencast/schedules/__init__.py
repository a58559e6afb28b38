"""Scheduled work: per tenant, at the times of a cron expression, fetch the tenant's data,
retrain and save a forecast run. Service shape: a procrastinate periodic task finds the
tenants that are due (tasks.py); embedded shape: `ovencast run` does it once, from cron
or a systemd timer (embedded.py). docs/decisions/008-model-governance.md says why one
periodic task and not one per tenant."""
