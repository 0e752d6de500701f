"""Shared fixtures."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


BENCHMARK_TABLES = {  # the layout tests read, and the entry of `nas data` that holds each file
    "nb201/nats_bench_tss_200ep.csv": "nb201-accuracy",
    "nb201/nb201_latency_help.csv": "nb201-latency",
    "zero_cost/nb201_zc12_725archs.csv": "nb201-zero-cost",
}


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark tables, as the files a user gets with the package (`nas data`), in the layout
    tests read: on a plain clone too, so no test skips for want of them. CIFAR-10 images are not
    among them (162 MB, downloaded: see ``cifar10_data``)."""
    import gzip
    import shutil

    from nas.data import path

    folder = tmp_path_factory.mktemp("benchmark-tables")
    for name, entry in BENCHMARK_TABLES.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path(entry), "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)
    return folder


@pytest.fixture(scope="session")
def cifar10_data() -> Path:
    """CIFAR-10: `nas data fetch cifar10`'s cache, else ../shared/data's archive; skips without either
    (CI has no internet: the download path itself is tested on a generated archive)."""
    from nas.data import DataError, path

    try:
        return path("cifar10")
    except DataError:
        archive = SHARED_DATA / "cifar10" / "cifar10_jpg.tar.xz"
        if archive.is_file():
            return archive
    pytest.skip("CIFAR-10 is not here: `nas data fetch cifar10` downloads it (162 MB)")


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
