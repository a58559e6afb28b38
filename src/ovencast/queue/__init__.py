"""The service shape's job queue: procrastinate on PostgreSQL."""
