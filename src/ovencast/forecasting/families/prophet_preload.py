"""Importing this module loads Prophet (and cmdstanpy, matplotlib) with their loggers
quieted, as `prophet.prophet_library` does on first use. The training pool's fork
server imports it before it forks workers (`training.pool.PRELOAD`): importing the
`prophet` package directly there would print "Importing plotly failed" into every
training's output, and each worker would pay the import itself."""

from ovencast.forecasting.families.prophet import prophet_library

prophet_library()
