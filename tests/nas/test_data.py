"""``nas data``: shipped tables checked by checksum, downloads through their real path (a local
HTTP server serving a generated CIFAR-10 binary archive), offline errors that say what to do."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.cli import main
from nas.data import CATALOGUE, DataError, describe, fetch, path, sha256_of
from nas.testing.cifar import cifar_binary_archive
from search_spaces.datasets import load_dataset


def test_every_shipped_table_is_here_and_matches_its_checksum() -> None:
    shipped = [e for e in CATALOGUE if e.url is None]
    assert {e.name for e in shipped} == {"nb201-accuracy", "nb201-latency", "nb201-zero-cost"}
    for e in shipped:
        assert fetch(e.name) == path(e.name) and sha256_of(path(e.name)) == e.sha256
        assert path(e.name).stat().st_size == e.size
    assert all(r["licence"] and r["source"] for r in describe())


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A local HTTP server serving the generated archive: its URL and SHA-256."""
    site = tmp_path / "site"
    site.mkdir()
    body = cifar_binary_archive(20)
    (site / "cifar-10-binary.tar.gz").write_bytes(body)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(site), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cifar-10-binary.tar.gz", hashlib.sha256(body).hexdigest()
    finally:
        server.shutdown()


def test_fetch_downloads_checks_extracts_and_the_dataset_loads(
    mirror: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = mirror
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="nas data fetch cifar10"):
        path("cifar10")
    # the wrong checksum (the recorded one is the real archive's): refused, nothing kept
    with pytest.raises(DataError, match=r"checksum .* is not cifar10's"):
        fetch("cifar10", url=url)
    assert not (tmp_path / "cache" / "cifar10" / ".complete").exists()
    assert main(["data", "fetch", "cifar10", "--url", url, "--sha256", digest]) == 0
    folder = path("cifar10")
    assert capsys.readouterr().out.strip() == f"cifar10: {folder}"
    assert not (tmp_path / "cache" / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
    data = load_dataset("cifar10", folder, holdout_fraction=0.1)
    assert len(data.train) + len(data.holdout) == 100 and len(data.test) == 20 and data.classes[0] == "airplane"
    assert main(["data", "path", "cifar10"]) == 0 and capsys.readouterr().out.strip() == str(folder)


def test_offline_the_error_names_the_file_to_place_and_from_takes_it(
    mirror: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = mirror
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/cifar-10-binary.tar.gz"  # nothing listens there
    assert main(["data", "fetch", "cifar10", "--url", closed]) == 2
    err = capsys.readouterr().err
    assert "cannot download" in err and "--from FILE" in err and "c4a38c50a1bc5f3a" in err
    copy = tmp_path / "copy.tar.gz"
    import urllib.request

    with urllib.request.urlopen(url) as response:
        copy.write_bytes(response.read())
    assert main(["data", "fetch", "cifar10", "--from", str(copy), "--sha256", digest]) == 0
    assert load_dataset("cifar10", path("cifar10")).num_classes == 10
    assert main(["data", "fetch", "nope"]) == 2 and "nas data list" in capsys.readouterr().err
