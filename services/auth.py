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
    # the file itself, not what a link points to: a link (even to a 0600 file) could hand the
    # service a token another user controls, and O_NOFOLLOW makes the check and the read one file
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise AuthSetupError(f"token file {path}: a symbolic link or unreadable; use a plain file") from None
    with os.fdopen(fd) as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise AuthSetupError(f"token file {path}: not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise AuthSetupError(f"token file {path}: owned by another user (uid {info.st_uid}); use your own file")
        if info.st_mode & 0o077:
            raise AuthSetupError(
                f"token file {path}: readable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run `chmod 600 {path}`"
            )
        text = fh.read(4096)
    return TokenSource(_check_token(text, f"token file {path}"), str(path))


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


def served_names(host: str) -> tuple[str, ...]:
    """The ``Host`` values a server bound to ``host`` answers by default: the loopback names for a
    loopback host, the host itself for one address, and for all interfaces (``0.0.0.0``, ``::``)
    this machine's names and addresses — never any name (a DNS-rebinding guard); more with
    ``--allowed-host``."""
    import socket

    if is_loopback(host):
        return LOOPBACK_NAMES
    if not is_wildcard(host):
        return (host.strip("[]"),)
    names = {*LOOPBACK_NAMES, socket.gethostname(), socket.getfqdn()}
    try:
        _, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
        names.update(aliases, addresses)
    except OSError:
        pass
    return tuple(sorted(n for n in names if n))


__all__ = [
    "TOKEN_ENV",
    "AuthSetupError",
    "TokenSource",
    "default_token_file",
    "is_loopback",
    "is_wildcard",
    "read_or_create_token_file",
    "resolve_token",
    "served_names",
    "token_matches",
]
