"""The HTTP API of the service shape: `create_app(settings)` in `ovencast.api.app`.

Each domain package has its own `endpoints.py` (router) and `schemas.py` (response
models); this package holds what they share: the app, its dependencies, the one error
handler and the health/readiness/metrics endpoints."""
