"""Database plumbing: engine and sessions, migrations, one file per table."""
