"""The published once-for-all ResNet-50 supernet: where it is, and the mapping between the
reference implementation's parameter names and ours (both directions).

The reference checkpoint's ``state_dict`` names the dynamic modules
(``input_stem.1.conv.conv.conv.weight``, ``blocks.3.conv2.bn.bn.running_mean``,
``classifier.linear.linear.weight``); older files name the same tensors without the repeated
part (``input_stem.0.conv.weight``, ``blocks.3.conv2.bn.running_mean``), which the reference's
own loader also accepts, and so do we. Ours: ``stem.1.conv.conv.weight``,
``blocks.3.conv2.bn.running_mean``, ``classifier.linear.weight``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# the reference model zoo keeps this one on Google Drive (confirm=t skips the large-file page)
URL = "https://drive.google.com/uc?export=download&confirm=t&id=1xy6VIPEHXqbbqNu3xEZUxhp5FbTVs5cQ"

# published name -> (URL, our preset)
PUBLISHED: Mapping[str, tuple[str, str]] = {"ofa_resnet50": (URL, "imagenet")}

_PREFIX = re.compile(r"(input_stem\.(\d+)\.|blocks\.(\d+)\.(conv[123]|downsample)\.|classifier\.)(.+)")
_TENSOR = re.compile(r"(conv\.)?(conv\.weight|bn\.(?:bn\.)?(weight|bias|running_mean|running_var|num_batches_tracked))")


def ours_from_reference(name: str) -> str:
    """Our parameter name for a reference one.

    Raises:
        KeyError: for a name that is not part of a once-for-all ResNet supernet.
    """
    match = _PREFIX.fullmatch(name)
    if match is None:
        raise KeyError(name)
    prefix, stem_index, rest = match.group(1), match.group(2), match.group(5)
    if prefix == "classifier.":
        linear = re.fullmatch(r"linear\.(?:linear\.)?(weight|bias)", rest)
        if linear is None:
            raise KeyError(name)
        return f"classifier.linear.{linear.group(1)}"
    if stem_index is not None:
        if stem_index not in ("0", "1", "2"):
            raise KeyError(name)
        if stem_index == "1":  # a residual block around the conv layer
            if not rest.startswith("conv."):
                raise KeyError(name)
            rest = rest[len("conv.") :]
        prefix = f"stem.{stem_index}."
    tensor = _TENSOR.fullmatch(rest)
    if tensor is None:
        raise KeyError(name)
    return prefix + ("conv.conv.weight" if tensor.group(3) is None else f"bn.{tensor.group(3)}")


def reference_from_ours(name: str) -> str:
    """The reference parameter name (the dynamic network's) for one of ours."""
    match = re.fullmatch(
        r"(stem\.([012])\.|blocks\.\d+\.(?:conv[123]|downsample)\.)(conv\.conv\.weight|bn\.(\w+))", name
    )
    if match is not None:
        prefix, stem_index, tensor, bn = match.groups()
        if stem_index is not None:
            prefix = f"input_stem.{stem_index}." + ("conv." if stem_index == "1" else "")
        return prefix + (tensor if bn is None else f"bn.bn.{bn}")
    linear = re.fullmatch(r"classifier\.linear\.(weight|bias)", name)
    if linear is not None:
        return f"classifier.linear.linear.{linear.group(1)}"
    raise KeyError(name)


__all__ = ["PUBLISHED", "URL", "ours_from_reference", "reference_from_ours"]
