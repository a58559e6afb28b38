"""Training orchestration: jobs fan out to one task per product, run in worker processes."""
