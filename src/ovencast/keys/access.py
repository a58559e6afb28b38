"""`Caller`: who is calling (an authenticated API key) and the checks every route makes.

Three questions, always in this order (api/dependencies.py asks them):
1. Is there a valid key? Otherwise `Unauthenticated` (401).
2. Does the key reach the tenant the request is about? A tenant key reaches only its own
   tenant; a key without tenant (global) reaches every tenant. Otherwise the request is
   answered exactly as if the tenant, job or version did not exist (404): the caller must
   never learn that another tenant's things exist. Routes about no tenant (registering
   and listing tenants, the circuit breakers) need a global key (`Forbidden`, 403).
3. Does the key's role include the role the route needs? Otherwise `Forbidden` (403).
"""

from __future__ import annotations

from dataclasses import dataclass

from ovencast.errors import Forbidden
from ovencast.keys.roles import Role


@dataclass(frozen=True)
class Caller:
    key_id: int
    role: Role
    # None: a global key (no tenant), which reaches every tenant.
    tenant_id: int | None = None
    tenant: str | None = None

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    @property
    def rate_limit_bucket(self) -> str:
        """Whose budget a request counts against: the key's tenant (all its keys share
        one), or, for a global key, the key itself."""
        return f"key:{self.key_id}" if self.tenant_id is None else f"tenant:{self.tenant_id}"

    def reaches_tenant(self, name: str) -> bool:
        return self.tenant_id is None or self.tenant == name

    def reaches_tenant_id(self, tenant_id: int) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id

    def require_role(self, role: Role) -> None:
        if not self.role.includes(role):
            raise Forbidden(f"this API key's role is '{self.role}'; this request needs "
                            f"role '{role}'")

    def require_global(self, role: Role) -> None:
        if not self.is_global:
            raise Forbidden("this request is not about one tenant: it needs an API key "
                            "without tenant (`ovencast keys create --admin`)")
        self.require_role(role)
