"""Connection URLs in messages and logs: the password never leaves the process."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")
_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db?password=x`` -> ``postgresql://u:***@h/db?password=***``."""
    return _PARAM.sub(r"\1***", _USERINFO.sub(r"\g<scheme>\g<user>:***@", url))


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("postgresql", "postgres", "postgresql+psycopg")


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy (MLflow's and Optuna's stores) reads a bare ``postgresql://`` as psycopg2, which
    tierwise does not install; name psycopg 3 instead. Any other URL is returned as is."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if sep and scheme.lower() in ("postgresql", "postgres") else url
