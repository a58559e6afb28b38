"""ovencast: demand-forecasting training service for bakeries."""

__version__ = "0.1.0"
