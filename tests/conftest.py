"""Shared fixtures."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder (../shared/data); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set NAS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: NAS_TEST_POSTGRES_URL, else a private one started with pgserver."""
    url = os.environ.get("NAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        import pgserver
    except ImportError:
        pytest.skip("PostgreSQL tests need NAS_TEST_POSTGRES_URL or the pgserver package (pip install -e '.[dev]')")
    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


_DATABASES = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """URL of a new, empty database on the PostgreSQL server (one per test)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nas.store import database_url

    name = f"nas_test_{os.getpid()}_{next(_DATABASES)}"
    admin = create_engine(database_url(postgres_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(database_url(postgres_server)).set(database=name).render_as_string(hide_password=False)
