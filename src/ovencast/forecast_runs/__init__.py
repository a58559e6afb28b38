"""Saved forecasts: what a tenant was told, by which model versions (champions and
challengers in shadow), kept to be scored against the sales that arrive later
(ovencast.accuracy)."""
