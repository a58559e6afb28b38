"""Realised accuracy: saved forecasts (ovencast.forecast_runs) scored against the sales
that arrived later, per product, model version and lead time, beside the seasonal naive
forecast made from the same sales; drift warnings; champion against challenger."""
