"""Tiny environment readers for settings: a bad value fails loudly at start-up."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting in the environment has a value we cannot use."""


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ConfigError(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number within [minimum, maximum]: a zero or negative count,
    timeout or port loads fine and fails much later, far from its cause."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        in_range = (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    except ValueError:
        in_range = False
    if not in_range:
        raise ConfigError(f"{name} must be a whole number{_range(minimum, maximum)}; got {raw!r}")
    return value


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" of at least {minimum}"
    if maximum is not None:
        return f" of at most {maximum}"
    return ""


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_redis_url(name: str, default: str = "") -> str:
    """A Redis URL, or the default. Checked here: a URL without its scheme loads,
    and then the cache fails on every request and Celery looks for RabbitMQ."""
    value = env_str(name, default)
    if value and urlsplit(value).scheme.lower() not in {"redis", "rediss", "unix"}:
        # The value itself is not repeated: it may hold a password.
        raise ConfigError(f"{name} must be a Redis URL: redis://host:6379/0, rediss://… or unix://…")
    return value


def parse_database_url(url: str) -> dict:
    """Turn `postgres://user:pass@host:port/name` or `sqlite:///path` into DATABASES['default']."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as in the common convention.
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ConfigError(f"DATABASE_URL {url!r} names no SQLite file")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # IMMEDIATE takes the write lock when a transaction starts, so the web
            # server and the embedded worker wait for each other instead of
            # failing with "database is locked" half-way through a transaction.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        # Messages show the URL without its password: they end up in logs.
        shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigError(f"DATABASE_URL {shown!r} names no database")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"DATABASE_URL {shown!r}: the port must be a number from 1 to 65535") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        prepare = _prepare_options(shown, options.pop("prepare_threshold", "5"))
        conn_max_age = options.pop("conn_max_age", "60")
        if not conn_max_age.isdigit():
            raise ConfigError(f"DATABASE_URL {shown!r}: conn_max_age must be a whole number of seconds")
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": int(conn_max_age),
            "CONN_HEALTH_CHECKS": True,
        }
        # Just-in-time compilation off, unless the URL's own server settings
        # (`options`, given after this one) turn it on: PostgreSQL compiles any
        # query whose estimated cost passes jit_above_cost, and the customer
        # list's, searched for a word thousands of accounts hold, is estimated
        # costly for its per-account subqueries that hardly ever run. It spent
        # 3.0 of 3.4 s compiling; the app's reads are short and gain nothing.
        server = " ".join(filter(None, ["-c jit=off", options.pop("options", "")]))
        config["OPTIONS"] = {**options, **prepare, "options": server}
        return config
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported (use postgres:// or sqlite://)")


def _prepare_options(url: str, threshold: str) -> dict:
    """Prepared statements: once a connection has run a statement `threshold`
    times it prepares it, and PostgreSQL then skips parsing and planning it, which
    cost more than running the short indexed reads a page makes (the timeline's
    server time per request fell by a quarter). They need server-side parameter
    binding. `?prepare_threshold=off` turns both off, for a pooler in
    transaction mode (PgBouncer) that cannot keep a connection's statements."""
    if threshold.lower() in {"off", "none"}:
        return {}
    if not threshold.isdigit():
        raise ConfigError(f"DATABASE_URL {url!r}: prepare_threshold must be a whole number or 'off'")
    return {"server_side_binding": True, "prepare_threshold": int(threshold)}
