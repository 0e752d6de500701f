"""The published once-for-all MobileNetV3 and ProxylessNAS supernets: their names, and the mapping between the
reference implementation's parameter names and ours (both directions).

The reference checkpoints are dicts whose ``state_dict`` maps the reference module names
(``first_conv.conv.weight``, ``blocks.5.conv.depth_conv.se.fc.reduce.weight``, ...) to tensors;
ours name the same tensors after our modules (``stem.conv.weight``, ``blocks.4.se.fc1.weight``).
The reference's block 0 is our fixed ``first_block``; its blocks 1-20 are our elastic blocks 0-19.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

URL_BASE = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"


@dataclass(frozen=True)
class PublishedSupernet:
    """One published checkpoint: where it is and the space configuration it needs."""

    name: str
    config: str
    options: Mapping[str, Any]
    url: str


PUBLISHED: Mapping[str, PublishedSupernet] = {
    name: PublishedSupernet(name, config, {}, URL_BASE + name)
    for name, config in (
        ("ofa_mbv3_d234_e346_k357_w1.0", "imagenet"),
        ("ofa_mbv3_d234_e346_k357_w1.2", "imagenet_w1.2"),
        ("ofa_proxyless_d234_e346_k357_w1.3", "proxyless_w1.3"),
    )
}

# reference name part -> ours, inside an elastic block (``blocks.N.conv.`` stripped)
_ELASTIC = (
    ("inverted_bottleneck.conv.conv.", "expand_conv.conv."),
    ("inverted_bottleneck.bn.bn.", "expand_bn."),
    ("depth_conv.conv.5to3_matrix", "depthwise_conv.transforms.5to3"),
    ("depth_conv.conv.7to5_matrix", "depthwise_conv.transforms.7to5"),
    ("depth_conv.conv.conv.", "depthwise_conv.conv."),
    ("depth_conv.bn.bn.", "depthwise_bn."),
    ("depth_conv.se.fc.reduce.", "se.fc1."),
    ("depth_conv.se.fc.expand.", "se.fc2."),
    ("point_linear.conv.conv.", "project_conv.conv."),
    ("point_linear.bn.bn.", "project_bn."),
)
_FIRST_BLOCK = (("depth_conv.", "depthwise."), ("point_linear.", "project."))
_TOP = (
    ("first_conv.", "stem."),
    ("final_expand_layer.", "final_expand."),
    ("feature_mix_layer.", "feature_mix."),
    ("classifier.", "classifier."),
)


def _swap(text: str, pairs: tuple[tuple[str, str], ...], reverse: bool) -> str | None:
    for ref, ours in pairs:
        old, new = (ours, ref) if reverse else (ref, ours)
        if text.startswith(old):
            return new + text[len(old) :]
    return None


def ours_from_reference(name: str) -> str:
    """Our parameter name for a reference one.

    Raises:
        KeyError: for a name that is not part of a once-for-all MobileNetV3 supernet.
    """
    match = re.fullmatch(r"blocks\.(\d+)\.conv\.(.+)", name)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        if index == 0:
            mapped = _swap(rest, _FIRST_BLOCK, reverse=False)
            if mapped is not None:
                return "first_block." + mapped
        else:
            mapped = _swap(rest, _ELASTIC, reverse=False)
            if mapped is not None:
                return f"blocks.{index - 1}.{mapped}"
    else:
        mapped = _swap(name, _TOP, reverse=False)
        if mapped is not None:
            return mapped
    raise KeyError(name)


def reference_from_ours(name: str) -> str:
    """The reference parameter name for one of ours (the inverse of :func:`ours_from_reference`)."""
    if name.startswith("first_block."):
        mapped = _swap(name[len("first_block.") :], _FIRST_BLOCK, reverse=True)
        if mapped is not None:
            return "blocks.0.conv." + mapped
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if match:
        mapped = _swap(match.group(2), _ELASTIC, reverse=True)
        if mapped is not None:
            return f"blocks.{int(match.group(1)) + 1}.conv.{mapped}"
    mapped = _swap(name, _TOP, reverse=True)
    if mapped is not None:
        return mapped
    raise KeyError(name)


__all__ = ["PUBLISHED", "URL_BASE", "PublishedSupernet", "ours_from_reference", "reference_from_ours"]
