"""Imports every built-in family so that it registers itself."""

import ovencast.forecasting.families.ensemble as _ensemble  # noqa: F401
import ovencast.forecasting.families.intermittent as _intermittent  # noqa: F401
import ovencast.forecasting.families.lightgbm_global as _lightgbm_global  # noqa: F401
import ovencast.forecasting.families.prophet  # noqa: F401
import ovencast.forecasting.families.statistical as _statistical  # noqa: F401
from ovencast.forecasting.families import seasonal_naive  # noqa: F401
