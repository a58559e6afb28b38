"""Forecasts served from each product's active model version."""
