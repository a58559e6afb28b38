"""Training progress events across processes: PostgreSQL NOTIFY from workers, LISTEN in
any API instance."""

CHANNEL = "ovencast_training_events"
