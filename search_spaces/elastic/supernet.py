"""The supernet side of an elastic family: construction from a space (or a preset), an explicit
seed, once-for-all's initialisation, the active subnet, and a fresh static network to copy a
subnet's weights into."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from nas.core.arch import Arch
from nas.core.space import create_space
from search_spaces.elastic.config import ElasticConfig


class ElasticSupernet(nn.Module):
    """Base of a family's weight-sharing supernet.

    A family defines ``family`` (its space's registry name), :meth:`_build` (the modules, from the
    config), :meth:`set_active` and :meth:`extract`; :meth:`reset_parameters` is once-for-all's
    "he_fout" initialisation unless the family overrides it.

    Args:
        space: The space, or a preset name / config / dict of the family's space.
        seed: Seed of the weight initialisation; ``None`` keeps PyTorch's default initialisation.
        **overrides: Config overrides when ``space`` is a name or config.
    """

    family: ClassVar[str]

    def __init__(self, space: Any = "imagenet", seed: int | None = 0, **overrides: Any) -> None:
        super().__init__()
        if isinstance(space, (str, Mapping, ElasticConfig)):
            space = create_space(self.family, config=space, **overrides)
        elif overrides:
            raise ValueError("config overrides are only accepted together with a preset name or config")
        self.space = space
        with torch.random.fork_rng(devices=[]):  # building draws PyTorch's default initialisation
            self._build(space.config)
        if seed is not None:
            self.reset_parameters(seed)
        self.active_arch: Arch = space.max_arch()
        self.set_active(self.active_arch)

    def _build(self, cfg: Any) -> None:
        raise NotImplementedError

    def set_active(self, arch: Arch | Mapping[str, Any]) -> Arch:
        """Selects the subnet used by ``forward``; returns the canonical arch."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """Once-for-all's "he_fout" initialisation from an explicit seed.

        Convs: normal(0, sqrt(2 / (k*k*out))), zero bias; BN: weight 1, bias 0; linear: uniform
        (+-1/sqrt(in)) weights and zero bias; anything else as :meth:`_reset_other` says.
        """
        gen = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
            elif isinstance(module, nn.Linear):
                bound = 1.0 / module.in_features**0.5
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 * bound - bound)
                if module.bias is not None:
                    module.bias.zero_()
            else:
                self._reset_other(module)

    def _reset_other(self, module: nn.Module) -> None:
        """Initialises a module that is no conv, BN or linear layer (default: leaves it)."""

    @contextmanager
    def active(self, arch: Arch | Mapping[str, Any]) -> Iterator[Arch]:
        """Context manager: ``arch`` active inside, the previous arch restored after."""
        previous = self.active_arch
        try:
            yield self.set_active(arch)
        finally:
            self.set_active(previous)

    def static_config(self, arch: Arch | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Layer list of ``arch`` (default: the active arch), without building modules."""
        return list(self.space.static_config(self.active_arch if arch is None else arch))

    def _new_static(self, arch: Arch) -> Any:
        """A fresh static network of ``arch`` on this supernet's device and dtype, in its mode; the
        global RNG is left untouched (the weights are copied in afterwards)."""
        with torch.random.fork_rng(devices=[]):
            net = self.space.build_static(arch)
        parameter = next(self.parameters())
        net.to(device=parameter.device, dtype=parameter.dtype)
        net.train(self.training)
        return net


@torch.no_grad()
def copy_bn(src: nn.Module, dst: nn.Module, channels: int) -> None:
    """Copies the first ``channels`` of a (dynamic) BN's affine parameters and statistics into a static BN."""
    assert isinstance(src, nn.BatchNorm2d) and isinstance(dst, nn.BatchNorm2d)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[:channels])
    assert src.num_batches_tracked is not None and dst.num_batches_tracked is not None
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
