"""Where a tenant's data comes from: imported data (embedded shape) or the upstream sales,
weather and traffic services over HTTP (service shape), behind one interface.

    base.py       DataSource interface, SourceData, TenantProfile
    database.py   DatabaseSource: what `ovencast import` stored
    http.py       HttpSource: the upstream services, degradation rules
    client.py     one service: httpx + timeouts + breaker + retries, errors
    breakers.py   circuit breakers per service (purgatory), states, gauge, logs
    retry.py      RetryPolicy (tenacity)
    errors.py     UpstreamError and its subclasses
    contract.py   paths and JSON shapes (docs/UPSTREAM.md), shared with the server
    server.py     `ovencast data-server`: a dataset directory served under the contract
    faults.py     fault specs the data server injects
    service.py    open_data_source (chosen by settings), resolve_tenant (create on use)
"""
