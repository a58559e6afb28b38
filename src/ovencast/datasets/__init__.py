"""Importing a tenant's dataset directory (sales, weather, traffic, calendar)."""
