"""Who may do what: bearer tokens, and browser sessions opened with one.

ARMSCOPE_API_TOKEN may do everything, ARMSCOPE_READ_TOKEN only read. Unset
means open (a laptop). Tokens are compared in constant time, never logged, and
wrong ones are rate-limited per client address. A session cookie names a
server-side session and is signed with a key derived from the installation
secret and both tokens (service.db.sessions), so it reveals nothing about a
token, and changing a token logs every browser out. The API and the dashboard
both ask this one object, so they apply one rule.
"""

from __future__ import annotations

import hmac

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service.db.rate_limit import FailureLimiter, TooManyFailures
from service.db.sessions import BrowserSessions, Role, session_key
from service.secret_key import installation_secret
from service.settings import Settings

COOKIE = "armscope_session"  # the browser session's cookie, read by every face that serves pages


class Access:
    def __init__(
        self,
        api_token: str | None,
        read_token: str | None = None,
        *,
        sessions: BrowserSessions | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.api_token = api_token or None
        self.read_token = read_token or None
        if self.api_token is not None and (sessions is None or limiter is None):
            raise ValueError("token authentication needs browser sessions and a failure limiter")
        self.sessions, self.limiter = sessions, limiter

    @classmethod
    def for_settings(cls, settings: Settings, engine: Engine) -> Access:
        """Reads (or makes) the installation secret only when a token turns authentication on."""
        if not settings.api_token:
            return cls(None)
        key = session_key(installation_secret(settings), settings.api_token, settings.read_token)
        return cls(
            settings.api_token,
            settings.read_token,
            sessions=BrowserSessions(key, engine),
            limiter=FailureLimiter(engine, settings.auth_failures_per_minute),
        )

    @property
    def enabled(self) -> bool:
        return self.api_token is not None

    def role_of_token(self, presented: str | None) -> Role | None:
        if not self.enabled or presented is None:
            return None
        given = presented.encode()
        is_write = hmac.compare_digest(given, self.api_token.encode())  # type: ignore[union-attr]
        is_read = self.read_token is not None and hmac.compare_digest(given, self.read_token.encode())
        return "write" if is_write else "read" if is_read else None

    def limited_role_of_token(self, presented: str | None, client: str) -> Role | None:
        """role_of_token, counted against ``client``'s failures; raises TooManyFailures past the limit."""
        return self.limiter.attempt(client, lambda: self.role_of_token(presented))  # type: ignore[union-attr]

    def session_cookie(self, role: Role, now: float | None = None) -> str:
        return self.sessions.open(role, now)  # type: ignore[union-attr]

    def role_of_cookie(self, cookie: str | None, now: float | None = None) -> Role | None:
        if not self.enabled:
            return None
        return self.sessions.role_of(cookie, now)  # type: ignore[union-attr]

    def end_session(self, cookie: str | None) -> None:
        if self.enabled:
            self.sessions.close(cookie)  # type: ignore[union-attr]

    def role_of(self, bearer: str | None, cookie: str | None, client: str) -> Role | None:
        """The role of a bearer token (counted against ``client``), else of a session cookie;
        raises TooManyFailures for a client past the limit."""
        if bearer is not None:
            return self.limited_role_of_token(bearer, client)
        return self.role_of_cookie(cookie)

    def best_role_of(self, bearer: str | None, cookie: str | None, client: str) -> Role | None:
        """As role_of, for what is open to all and shows more to those who may read: a client past
        the limit, or a database that does not answer, gets the least."""
        try:
            return self.role_of(bearer, cookie, client)
        except (TooManyFailures, SQLAlchemyError):
            return None

    def may_write(self, cookie: str | None) -> bool:
        """Whether a browser with this session cookie may launch, cancel, retry or delete runs:
        always on an open server, else only with a write session."""
        return not self.enabled or self.role_of_cookie(cookie) == "write"
