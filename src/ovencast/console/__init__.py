"""The web console: server-rendered pages for bakers and operators at `/` (endpoints.py),
signed in with an API key (session.py), drawn from the domain services (service.py)."""
