"""API keys: who calls the service API, for which tenant, with which role.

A key is shown once, when it is created (`ovencast keys create`); the database keeps only
the SHA-256 of its secret. `service.authenticate` turns a presented key into a `Caller`
(`access.py`), whose tenant and role the API's dependencies check on every route."""
