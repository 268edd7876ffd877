"""What every API handler shares: typed errors rendered as JSON, body and query readers,
role sets, and the complaint scoping rule (404, never 403, for what an officer may not see)."""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from aiohttp import web

from gateway.http import json_error

log = logging.getLogger(__name__)

ROLES = ("agent", "officer", "supervisor", "admin")
# Who may do what; ``visible_to`` narrows officers further to their administration.
CAN: dict[str, tuple[str, ...]] = {
    "read": ROLES,
    "create": ("agent", "supervisor", "admin"),
    "note": ROLES,
    "status": ("officer", "supervisor", "admin"),
    "reply": ("officer", "supervisor", "admin"),
    "transfer": ("officer", "supervisor", "admin"),
    "recategorise": ("supervisor", "admin"),
    "corrections": ("supervisor", "admin"),
    "users": ("admin",),
}
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "field"?}}``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def response(self) -> web.Response:
        extra = {"field": self.field} if self.field else {}
        resp = json_error(self.status, self.code, self.message, **extra)
        resp.headers.update(self.headers)
        return resp


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid", message, field=field)


def not_found(what: str = "complaint") -> ApiError:
    return ApiError(404, "not_found", f"no {what} with this reference" if what == "complaint" else f"no such {what}")


def forbidden(message: str, field: str | None = None) -> ApiError:
    return ApiError(403, "forbidden", message, field=field)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api(handler: Handler) -> Handler:
    """Render ``ApiError`` as JSON; unexpected errors as a JSON 500 without internals."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPException:
            raise
        except Exception:
            log.exception("API handler %s failed", handler.__name__)
            return json_error(500, "internal", "internal error; it has been logged")

    return wrapped


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False, default=_default),
                        content_type="application/json", headers=headers)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or 400 ``invalid_json``."""
    if not request.can_read_body:
        return {}
    try:
        raw = await request.text()
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
    if "\\u0000" in raw or "\x00" in raw:  # a PostgreSQL text column cannot hold NUL: a 400, not a 500
        raise ApiError(400, "invalid_json", "NUL characters are not accepted in the body")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, *, required: bool = False, max_length: int = 5000,
               default: str | None = None) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(name, f"{name} is required")
        return default
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise invalid(name, f"{name} is longer than {max_length} characters")
    return value


def bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(name, f"{name} must be true or false")
    return value


def choice(value: str | None, name: str, allowed: Any) -> str | None:
    if value is not None and value not in allowed:
        listed = ", ".join(sorted(allowed)) if len(allowed) <= 20 else "see the configuration"
        raise invalid(name, f"{name} must be one of: {listed}")
    return value


def paging(query: Any) -> tuple[int, int]:
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise invalid("limit", "limit must be a whole number") from None
    try:
        offset = int(query.get("offset", 0))
    except ValueError:
        raise invalid("offset", "offset must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise invalid("offset", "offset must not be negative")
    return limit, offset


def date_bound(value: str | None, name: str, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a whole UTC day; ``to`` includes it) or an ISO 8601 date-time."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time.min, tzinfo=timezone.utc)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, f"{name} must be a date YYYY-MM-DD or an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def client_ip(request: web.Request) -> str:
    return (request.remote or "unknown")[:64]
