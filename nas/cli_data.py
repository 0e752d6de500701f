"""``nas data``: the benchmark tables shipped with the package and the datasets fetched on demand."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli_output import CLIError, emit


def cmd_data_list(args: argparse.Namespace) -> None:
    from nas.data import data_dir, describe

    rows = describe()
    lines = [f"{'name':<16} {'status':<8} {'MB':>6}  licence / what"]
    for r in rows:
        lines.append(f"{r['name']:<16} {r['status']:<8} {r['size_mb']:>6}  {r['licence']}: {r['what']}")
        lines.append(f"{'':<32}{r['path']}")
    lines.append(f"download cache: {data_dir()} ($NAS_DATA_DIR); `nas data fetch NAME` gets a missing one")
    emit(args, rows, "\n".join(lines))


def cmd_data_path(args: argparse.Namespace) -> None:
    from nas.data import DataError, path

    try:
        found = path(args.name)
    except DataError as exc:
        raise CLIError(str(exc)) from None
    emit(args, {"name": args.name, "path": str(found)}, str(found))


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from nas.data import DataError, fetch

    try:
        found = fetch(args.name, args.source, url=args.url, sha256=args.sha256)
    except DataError as exc:
        raise CLIError(str(exc)) from None
    emit(args, {"name": args.name, "path": str(found)}, f"{args.name}: {found}")


def add_data_commands(sub: Any, command_group: Any) -> None:
    group = command_group(sub, "data", "benchmark tables and datasets the examples and recipes use")
    p = group.add_parser("list", help="what there is, whether it is here, its licence and where it is")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_list)
    p = group.add_parser("path", help="the file or folder of one entry (for specs and configs)")
    p.add_argument("name", help="an entry of `nas data list`")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_path)
    p = group.add_parser("fetch", help="download an entry into the cache (or check a shipped one), checksum checked")
    p.add_argument("name", help="an entry of `nas data list`")
    p.add_argument("--from", dest="source", metavar="FILE", help="a copy downloaded elsewhere instead of the URL")
    p.add_argument("--url", help="a mirror instead of the entry's URL (the checksum still applies)")
    p.add_argument("--sha256", help="the checksum expected instead of the recorded one (another version)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_fetch)


__all__ = ["add_data_commands"]
