"""The service's credential: one bearer token, compared in constant time.

Where it comes from, first match wins: ``nas serve --token``, ``$NAS_SERVICE_TOKEN``, or a
token file (``--token-file``; by default next to a SQLite store as ``<db>.token``, else
``$XDG_CONFIG_HOME/hwnas/service.token``). A token file is created on first start with a
random token, readable only by its owner; an existing one that others can read is refused.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

TOKEN_ENV = "NAS_SERVICE_TOKEN"
MIN_TOKEN_LENGTH = 16


class AuthSetupError(ValueError):
    """The token cannot be set up as asked (too short, unsafe file, no-auth on a public host)."""


@dataclass(frozen=True)
class TokenSource:
    token: str
    where: str  # for the start-up message: "--token", "$NAS_SERVICE_TOKEN" or the file's path
    created: bool = False


def default_token_file(store_url: str) -> Path:
    """``<db>.token`` beside a SQLite file store, else ``$XDG_CONFIG_HOME/hwnas/service.token``."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().with_name(Path(url.database).name + ".token")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "hwnas" / "service.token"


def _check_token(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthSetupError(f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters")
    if not token.isascii() or any(c.isspace() for c in token):
        raise AuthSetupError(f"{where}: the token must be printable ASCII without spaces")
    return token


def read_or_create_token_file(path: Path) -> TokenSource:
    """The token kept in ``path``, creating the file (mode 0600) with a random token if absent."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: read theirs
            return read_or_create_token_file(path)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return TokenSource(token, str(path), created=True)
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise AuthSetupError(f"token file {path}: not a regular file")
    if mode & 0o077:
        raise AuthSetupError(
            f"token file {path}: readable by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
        )
    return TokenSource(_check_token(path.read_text(), f"token file {path}"), str(path))


def resolve_token(token: str | None, token_file: str | Path | None, store_url: str) -> TokenSource:
    """The service's token: ``--token``, ``$NAS_SERVICE_TOKEN``, else the token file."""
    if token:
        return TokenSource(_check_token(token, "--token"), "--token")
    env = os.environ.get(TOKEN_ENV)
    if env:
        return TokenSource(_check_token(env, f"${TOKEN_ENV}"), f"${TOKEN_ENV}")
    return read_or_create_token_file(Path(token_file) if token_file else default_token_file(store_url))


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a presented token with the service's."""
    if given is None:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), given.encode("utf-8", errors="replace"))


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to bind) is reachable only from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


__all__ = [
    "TOKEN_ENV",
    "AuthSetupError",
    "TokenSource",
    "default_token_file",
    "is_loopback",
    "is_wildcard",
    "read_or_create_token_file",
    "resolve_token",
    "token_matches",
]
