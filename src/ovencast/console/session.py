"""The console's sign-in session (docs/SECURITY.md, decision 011).

Signing in with an API key sets one cookie: HttpOnly (no script reads it), SameSite=Strict
(no other site's page sends it), Secure when the console is served over https, valid for
CONSOLE_SESSION_HOURS. It holds no secret: the key's id, the first characters of the key's
stored hash (`keys.service.FINGERPRINT_CHARS`) and the session's CSRF token, signed with
CONSOLE_SESSION_SECRET (itsdangerous, HMAC-SHA1 over a salted key derivation). Every
request re-reads the key (`keys.service.resume`): a revoked key ends its sessions at once.

Without CONSOLE_SESSION_SECRET each process draws a random secret at start: sessions end
when the process restarts and are not shared between API processes. Set it where more
than one API process serves the console.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import Forbidden, Unauthenticated
from ovencast.keys import service as keys_service
from ovencast.keys.access import Caller
from ovencast.settings import Settings

COOKIE = "ovencast_console"
CSRF_FIELD = "csrf_token"
SALT = "ovencast.console.session"
NOT_SIGNED_IN = "not signed in to the console"


@dataclass(frozen=True)
class ConsoleSession:
    key_id: int
    fingerprint: str
    csrf: str


class SessionCookies:
    """Issues and reads the signed session cookie."""

    def __init__(self, secret: str, *, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self.max_age_s = max_age_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCookies:
        configured = settings.console_session_secret
        secret = (configured.get_secret_value() if configured is not None
                  else secrets.token_urlsafe(32))
        return cls(secret, max_age_s=int(settings.console_session_hours * 3600))

    def issue(self, response: Response, signed_in: keys_service.SignedIn, *,
              secure: bool) -> ConsoleSession:
        """A new session (a fresh CSRF token) for the key, set on `response`."""
        session = ConsoleSession(key_id=signed_in.caller.key_id,
                                 fingerprint=signed_in.fingerprint,
                                 csrf=secrets.token_urlsafe(24))
        value = self._serializer.dumps([session.key_id, session.fingerprint, session.csrf])
        response.set_cookie(COOKIE, value, max_age=self.max_age_s, path="/", secure=secure,
                            httponly=True, samesite="strict")
        return session

    def read(self, connection: HTTPConnection) -> ConsoleSession | None:
        """The request's session; None without a cookie, or with one that is forged,
        expired or malformed."""
        value = connection.cookies.get(COOKIE)
        if not value:
            return None
        try:
            loaded: Any = self._serializer.loads(value, max_age=self.max_age_s)
            key_id, fingerprint, csrf = loaded
        except (BadSignature, TypeError, ValueError):
            return None
        if not (isinstance(key_id, int) and isinstance(fingerprint, str)
                and isinstance(csrf, str)):
            return None
        return ConsoleSession(key_id=key_id, fingerprint=fingerprint, csrf=csrf)

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def session_cookies(connection: HTTPConnection) -> SessionCookies:
    cookies: SessionCookies = connection.app.state.console_sessions
    return cookies


async def session_caller(connection: HTTPConnection, database: Database
                         ) -> tuple[Caller, ConsoleSession]:
    """The caller of the request's console session; `Unauthenticated` without one."""
    found = session_cookies(connection).read(connection)
    if found is None:
        raise Unauthenticated(NOT_SIGNED_IN)
    async with unit_of_work(database.sessions) as session:
        caller = await keys_service.resume(session, found.key_id, found.fingerprint)
    return caller, found


def same_origin(connection: HTTPConnection, origin: str) -> bool:
    """`Origin` names the host the request was sent to (scheme aside: a proxy may end
    TLS in front of us)."""
    _, _, rest = origin.rstrip("/").partition("://")
    host = connection.headers.get("host")
    return bool(rest) and host is not None and rest == host


def check_form(connection: HTTPConnection, session: ConsoleSession | None,
               presented: object) -> None:
    """A state-changing form: its `Origin`, when the browser sends one, is ours, and
    (signed in) its CSRF token is the session's. `Forbidden` otherwise."""
    origin = connection.headers.get("origin")
    if origin is not None and not same_origin(connection, origin):
        raise Forbidden("this form was sent from another site")
    if session is not None and not (isinstance(presented, str) and hmac.compare_digest(
            presented.encode(), session.csrf.encode())):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
