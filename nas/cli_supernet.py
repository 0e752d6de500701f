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
    p.add_argument("source", help="ofa_mbv3_d234_e346_k357_w1.0, ofa_mbv3_d234_e346_k357_w1.2, or a .pth file")
    p.add_argument("--out", required=True, help="run folder to write (as `nas train` writes)")
    p.add_argument("--space", help="space of a checkpoint file (default: ofa_mbv3)")
    p.add_argument("--config", help="space preset of a checkpoint file (default: imagenet; imagenet_w1.2)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space option, e.g. width_mult=1.2")
    p.add_argument("--data", help="dataset evaluation uses (e.g. imagefolder; default: synthetic images)")
    p.add_argument("--data-root", help="its folder")
    p.add_argument("--image-size", type=int, help="resize images to this side (e.g. 224 for ImageNet)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_import)
    p = group.add_parser("export-ofa", help="a run folder's supernet in the reference checkpoint format")
    p.add_argument("run", help="run folder (supernet.json)")
    p.add_argument("file", help="checkpoint file to write")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_export_ofa)
