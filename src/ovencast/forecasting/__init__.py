"""The pure forecasting core: long-format frames in, fitted models and forecasts out.

Nothing in this package imports database, HTTP or queue code.
"""
