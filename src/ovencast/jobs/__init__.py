"""Training jobs and their per-product runs."""
