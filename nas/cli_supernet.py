"""``nas supernet import`` and ``nas supernet export-ofa``: published supernets in and out of run folders."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.cli_output import emit, parse_options


def cmd_import(args: argparse.Namespace) -> None:
    from nas.published import import_supernet

    options = parse_options(args.option or [])
    if args.config:
        options["config"] = args.config
    data = None
    if args.data:
        data = {"name": args.data, "root": args.data_root}
        if args.image_size:
            data["image_size"] = args.image_size
        if args.workers:
            data["workers"] = args.workers
    meta = import_supernet(args.source, args.out, space_name=args.space, space_options=options or None, data=data)
    payload = json.loads(meta.read_text())
    text = (
        f"imported {args.source} as space {payload['space_id']} into {args.out} "
        f"(sha256 {payload['source']['sha256'][:12]}...); evaluate with: nas eval {args.out} --arch '...'"
    )
    emit(args, {"run": str(args.out), **{k: payload[k] for k in ("space", "space_id", "source", "data")}}, text)


def cmd_export_ofa(args: argparse.Namespace) -> None:
    from nas.published import export_reference

    path = export_reference(args.run, args.file)
    emit(args, {"file": str(path)}, f"wrote {path} in the reference format ({{'state_dict': ...}})")


def add_supernet_commands(sub: Any, command_group: Any) -> None:
    group = command_group(sub, "supernet", "published supernets: import them as run folders, export them back")
    p = group.add_parser("import", help="a published once-for-all supernet (by name) or a reference checkpoint file")
    p.add_argument(
        "source",
        help="ofa_mbv3_d234_e346_k357_w1.0, ..._w1.2, ofa_proxyless_d234_e346_k357_w1.3, ofa_resnet50, "
        "or a checkpoint file (named as one of those: its space and preset)",
    )
    p.add_argument("--out", required=True, help="run folder to write (as `nas train` writes)")
    p.add_argument("--space", help="space of a checkpoint file (default: from its name, else ofa_mbv3)")
    p.add_argument("--config", help="space preset of a checkpoint file (default: from its name, else imagenet)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space option, e.g. width_mult=1.2")
    p.add_argument(
        "--data",
        help="dataset evaluation uses: imagefolder-stream (ImageNet's train/ and val/ tree, streamed), "
        "webdataset (train/ and val/ tar shards), or an in-memory one (default: synthetic images)",
    )
    p.add_argument("--data-root", help="its folder")
    p.add_argument("--image-size", type=int, help="image side (in-memory sets are resized to it; default: the space's)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes decoding images (streamed data)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_import)
    p = group.add_parser("export-ofa", help="a run folder's supernet in the reference checkpoint format")
    p.add_argument("run", help="run folder (supernet.json)")
    p.add_argument("file", help="checkpoint file to write")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_export_ofa)
