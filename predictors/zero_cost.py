"""Zero-cost proxies: scores of an untrained network from one batch (bigger = better).

Each proxy is ``fn(model, batch, loss_fn) -> float`` and is registered by name
(:func:`proxy_names`; plug-ins through the entry point group ``hwnas.proxies``). The model
given is never modified: every proxy works on a deep copy. Definitions follow Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS" (ICLR 2021), and the original papers:

- ``grad_norm``: sum over conv/linear layers of the L2 norm of the loss gradient.
- ``snip``: sum of |w * dL/dw| (Lee et al. 2019).
- ``grasp``: sum of -w * (H g), with H the Hessian and g the gradient (Wang et al. 2020).
- ``fisher``: per output channel of each conv/linear layer, 0.5 * mean_batch (sum_spatial a * dL/da)^2
  (Turner et al. 2020), summed over every weight of the channel as in the reference code of
  Abdelfattah et al. (each channel's value counts fan-in times: in_channels/groups * k * k).
- ``jacob_cov``: -sum(log(l + k) + 1/(l + k)) over eigenvalues l of the correlation matrix of the
  input Jacobians (Mellor et al. 2021, v1).
- ``synflow``: log of sum |w * dR/dw| with R = sum f(1) on |w|, no BatchNorm, float64
  (Tanaka et al. 2020); the log keeps values that span 1e30+ comparable and finite.
- ``naswot``: log-determinant of the Hamming-similarity kernel of activation patterns
  (Mellor et al. 2021, v2).
- ``zen``: log mean |f(x) - f(x + 0.01 e)| of the pre-classifier features under Gaussian
  weights and inputs, plus the log BN scale terms (Lin et al. 2021).
- ``meco``: sum over conv layers of the smallest eigenvalue of the Pearson correlation matrix
  between the channels of the layer's feature map, for one Gaussian input and one forward pass
  (Jiang et al., NeurIPS 2023; label- and data-free).
- ``zico``: sum over conv/linear layers of log(sum over weights of mean|g| / std(g)), the gradient
  g taken on each of the batch's two halves (Li et al., ICLR 2023: the inverse coefficient of
  variation of gradients across mini-batches).
- ``swap``: the number of distinct sample-wise activation patterns — over the batch, each unit
  in front of an activation (channel × position) gives the binary vector of the samples it is
  active for; the score counts the distinct vectors (Peng et al., ICLR 2024, without the paper's
  parameter-count regularisation). Forward only, no labels.
- ``az_expressivity``: AZ-NAS's expressivity (Lee & Ham, CVPR 2024): per conv layer, the entropy
  of the normalised eigenvalues of the covariance of its output channels over the batch's
  samples and positions — how evenly a layer spreads its features over its channels
  (isotropy) — summed over layers. Forward only, no labels; per conv layer rather than the
  paper's per block, so it applies to any network with Conv2d layers.
- ``params`` and ``flops``: trainable parameters and FLOPs per sample.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas.core import registry
from nas.core.config import short_repr

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.GELU, nn.SiLU, nn.LeakyReLU)


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError("batch: expected a tensor of inputs or an (inputs, targets) pair")


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError("model: no Conv2d or Linear layer to score")
    return layers


def _copy(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model)
    clone.train()
    clone.zero_grad(set_to_none=True)
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def _needs_targets(targets: torch.Tensor | None, name: str) -> torch.Tensor:
    if targets is None:
        raise ValueError(f"batch: {name} needs targets; pass (inputs, targets)")
    return targets


def grad_norm(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, y = _unpack(batch)
    net = _copy(model)
    loss_fn(net(x), _needs_targets(y, "grad_norm")).backward()
    return float(sum(m.weight.grad.norm() for m in _weighted_layers(net) if m.weight.grad is not None))


def snip(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, y = _unpack(batch)
    net = _copy(model)
    loss_fn(net(x), _needs_targets(y, "snip")).backward()
    return float(
        sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _weighted_layers(net) if m.weight.grad is not None)
    )


def grasp(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, y = _unpack(batch)
    y = _needs_targets(y, "grasp")
    net = _copy(model)
    weights = [m.weight for m in _weighted_layers(net)]
    g = torch.autograd.grad(loss_fn(net(x), y), weights, allow_unused=True)
    g = [torch.zeros_like(w) if gi is None else gi.detach() for w, gi in zip(weights, g)]
    grads = torch.autograd.grad(loss_fn(net(x), y), weights, create_graph=True, allow_unused=True)
    z = sum((gi * gf).sum() for gi, gf in zip(g, grads) if gf is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))


def fisher(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, y = _unpack(batch)
    net = _copy(model)
    activations: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        activations.append(output)

    layers = _weighted_layers(net)
    fan_in: list[int] = []

    def hook(layer: nn.Module) -> Callable[..., None]:
        def keep_with_fan_in(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            keep(module, inputs, output)
            fan_in.append(math.prod(layer.weight.shape[1:]))

        return keep_with_fan_in

    hooks = [m.register_forward_hook(hook(m)) for m in layers]
    try:
        loss_fn(net(x), _needs_targets(y, "fisher")).backward()
    finally:
        for h in hooks:
            h.remove()
    return _fisher_sum(activations, [a.grad for a in activations], fan_in)


def _fisher_sum(outputs: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None], fan_in: Sequence[int]) -> float:
    """Fisher from each layer's output and its loss gradient: per output channel 0.5 * mean over the
    batch of (sum over positions of a * dL/da)^2, counted once per weight of the channel."""
    total = 0.0
    for act, grad, weights_per_channel in zip(outputs, grads, fan_in):
        if grad is None:
            continue
        prod = act.detach() * grad.detach()
        per_sample = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
        total += weights_per_channel * float((0.5 * per_sample.pow(2).mean(0)).sum())
    return total


def jacob_cov(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, _ = _unpack(batch)
    if x.shape[0] < 2:
        raise ValueError("batch: jacob_cov needs at least 2 inputs")
    net = _copy(model)
    x = x.clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(x.shape[0], -1).double().cpu().numpy()
    corr = np.corrcoef(jac)
    corr = np.nan_to_num(corr, nan=0.0)
    eig = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(np.clip(eig, 0.0, None) + k) + 1.0 / (np.clip(eig, 0.0, None) + k)))


def _strip_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _strip_batchnorm(child)


def synflow(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, _ = _unpack(batch)
    net = _copy(model)
    _strip_batchnorm(net)
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    torch.sum(net(ones)).backward()
    total = torch.zeros((), dtype=torch.float64)
    for m in _weighted_layers(net):
        if m.weight.grad is not None:
            total = total + (m.weight.detach() * m.weight.grad).abs().sum()
    value = float(total)
    if value <= 0.0:
        return float("-inf")
    if not math.isfinite(value):
        raise FloatingPointError("synflow overflowed float64; the network is too deep for this proxy")
    return math.log(value)


def _pattern_kernel(n: int) -> tuple[torch.Tensor, Callable[..., None]]:
    """NASWOT's Hamming-similarity kernel of ``n`` samples and the forward hook that adds each
    activation's input pattern to it."""
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def count(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    return kernel, count


def _forward_with_activation_hook(net: nn.Module, x: torch.Tensor, hook: Callable[..., None], name: str) -> None:
    """A forward pass of ``x`` without gradients, ``hook`` seeing the input of every activation module."""
    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    if not hooks:
        raise ValueError(f"model: {name} needs activation modules (nn.ReLU, nn.Hardswish, ...)")
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()


def naswot(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    x, _ = _unpack(batch)
    kernel, count = _pattern_kernel(x.shape[0])
    _forward_with_activation_hook(_copy(model), x, count, "naswot")
    _sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet)


def zen(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    """Zen score; random weights and inputs come from torch's global RNG (seeded by :func:`score`)."""
    x, _ = _unpack(batch)
    net = _copy(model)
    gen = torch.Generator(device="cpu").manual_seed(int(torch.randint(0, 2**62, (1,))))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
                if m.bias is not None:
                    m.bias.zero_()
    features: list[torch.Tensor] = []
    head = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not head:
        raise ValueError("model: zen needs a final nn.Linear (its input is the feature vector)")
    hook = head[-1].register_forward_hook(lambda _m, inputs, _o: features.append(inputs[0]))
    try:
        with torch.no_grad():
            a = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
            b = a + 0.01 * torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
            net(a)
            net(b)
    finally:
        hook.remove()
    delta = (features[0] - features[1]).abs().reshape(x.shape[0], -1).sum(1).mean()
    score = math.log(float(delta) + 1e-12)
    for m in net.modules():
        if isinstance(m, _BatchNorm) and m.running_var is not None:
            score += math.log(math.sqrt(float(m.running_var.mean())) + 1e-12)
    return score


def _conv_feature_maps(model: nn.Module, x: torch.Tensor, name: str) -> list[torch.Tensor]:
    """The output of every Conv2d of (a copy of) ``model`` for input ``x``, in call order, without gradients."""
    net = _copy(model)
    maps: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: maps.append(out.detach()))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    if not hooks:
        raise ValueError(f"model: {name} needs Conv2d layers (their feature maps)")
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return maps


def meco(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    """MeCo; the Gaussian input comes from torch's global RNG (seeded by :func:`score`). A channel
    that is constant over the feature map has no correlation: its row and column count as 0."""
    x, _ = _unpack(batch)
    maps = _conv_feature_maps(model, torch.randn((1, *x.shape[1:]), dtype=x.dtype, device=x.device), "meco")
    total = 0.0
    for fmap in maps:
        channels = fmap[0].reshape(fmap.shape[1], -1).double()
        if channels.shape[0] < 2 or channels.shape[1] < 2:
            continue
        corr = torch.nan_to_num(torch.corrcoef(channels), nan=0.0)
        total += float(torch.linalg.eigvalsh(corr)[0])
    return total


def zico(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    """ZiCo over the batch's two halves (at least 2 inputs each)."""
    x, y = _unpack(batch)
    y = _needs_targets(y, "zico")
    if x.shape[0] < 4:
        raise ValueError("batch: zico needs at least 4 inputs (two halves of two)")
    net = _copy(model)
    layers = _weighted_layers(net)
    weights = [m.weight for m in layers]
    half = x.shape[0] // 2
    per_split = []
    for part in (slice(0, half), slice(half, 2 * half)):
        grads = torch.autograd.grad(loss_fn(net(x[part]), y[part]), weights, allow_unused=True)
        per_split.append([None if g is None else g.detach() for g in grads])
    total = 0.0
    for i in range(len(weights)):
        if any(split[i] is None for split in per_split):
            continue
        stacked = torch.stack([split[i] for split in per_split]).double()
        std = stacked.std(dim=0, unbiased=False)
        mask = std > 0
        ratio = float((stacked.abs().mean(dim=0)[mask] / std[mask]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


def swap(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    """SWAP: distinct sample-wise activation patterns over the batch (at most 62 samples are used,
    so a pattern packs into one integer)."""
    x, _ = _unpack(batch)
    x = x[:62]
    net = _copy(model)
    weights = 2 ** torch.arange(x.shape[0], dtype=torch.int64)
    patterns: list[torch.Tensor] = []

    def collect(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        active = (inputs[0].detach().reshape(x.shape[0], -1) > 0).to(torch.int64)  # samples x units
        patterns.append(torch.unique(weights @ active))

    _forward_with_activation_hook(net, x, collect, "swap")
    return float(torch.unique(torch.cat(patterns)).numel())


def az_expressivity(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    """AZ-NAS expressivity over every Conv2d output (samples x positions as observations)."""
    x, _ = _unpack(batch)
    maps = _conv_feature_maps(model, x, "az_expressivity")
    total = 0.0
    for fmap in maps:
        z = fmap.transpose(0, 1).reshape(fmap.shape[1], -1).double()  # channels x observations
        if z.shape[0] < 2 or z.shape[1] < 2:
            continue
        z = z - z.mean(dim=1, keepdim=True)
        eigenvalues = torch.linalg.eigvalsh(z @ z.T / z.shape[1]).clamp(min=0.0)
        mass = float(eigenvalues.sum())
        if not mass > 0:
            continue
        p = eigenvalues / mass
        p = p[p > 0]
        total += float(-(p * p.log()).sum())
    return total


def params(model: nn.Module, batch: Any = None, loss_fn: LossFn = F.cross_entropy) -> float:
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x, _ = _unpack(batch)
    net = copy.deepcopy(model).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x[:1])
    return float(counter.get_total_flops())


def proxy_names() -> list[str]:
    """Every registered proxy: the built-ins of this module, then plug-ins (:mod:`nas.core.registry`)."""
    return registry.names("proxy")


def proxy(name: str) -> Callable[..., float]:
    """The proxy function ``name`` (``fn(model, batch, loss_fn) -> float``, bigger = better)."""
    try:
        return registry.load("proxy", name)
    except registry.RegistryError as exc:
        known = ", ".join(proxy_names())
        raise ValueError(f"proxy: unknown zero-cost proxy {short_repr(name)}; known: {known}") from exc


def score(name: str, model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy, seed: int = 0) -> float:
    """Score of proxy ``name``; the global torch RNG is seeded from ``seed`` and restored."""
    fn = proxy(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(model, batch, loss_fn)


GRADIENT_FAMILY = ("grad_norm", "snip", "grasp", "fisher", "naswot")


def _gradient_family(names: Sequence[str], model: nn.Module, batch: Any, loss_fn: LossFn) -> dict[str, float]:
    """``grad_norm``, ``snip``, ``grasp``, ``fisher`` and ``naswot`` from one forward pass and one
    backward pass (kept for grasp's Hessian-vector product, which then needs one more), instead of
    a forward and a backward each and two of each for grasp. The same quantities as the single
    proxies: the loss gradient of every conv/linear weight and of every such layer's output, and
    the activation patterns, on the same batch in train mode."""
    x, y = _unpack(batch)
    y = _needs_targets(y, names[0])
    net = _copy(model)
    layers = _weighted_layers(net)
    outputs: list[torch.Tensor] = []
    fan_in: list[int] = []
    want_fisher = "fisher" in names

    def keep(layer: nn.Module) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            outputs.append(output)
            fan_in.append(math.prod(layer.weight.shape[1:]))

        return hook

    hooks = [m.register_forward_hook(keep(m)) for m in layers] if want_fisher else []
    kernel, count = _pattern_kernel(x.shape[0])
    activations = [m for m in net.modules() if isinstance(m, ACTIVATIONS)]
    if "naswot" in names and activations:  # (without activations naswot is left to its own error)
        hooks += [m.register_forward_hook(count) for m in activations]
    try:
        loss = loss_fn(net(x), y)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, float] = {}
    if "naswot" in names and activations:
        out["naswot"] = float(torch.linalg.slogdet(kernel)[1])
    if not set(names) - {"naswot"}:
        return out
    weights = [m.weight for m in layers]
    grads = torch.autograd.grad(loss, [*weights, *outputs], create_graph="grasp" in names, allow_unused=True)
    g_weights, g_outputs = grads[: len(weights)], grads[len(weights) :]
    if "grad_norm" in names:
        out["grad_norm"] = float(sum(g.detach().norm() for g in g_weights if g is not None))
    if "snip" in names:
        pairs = [(w.detach(), g.detach()) for w, g in zip(weights, g_weights) if g is not None]
        out["snip"] = float(sum((w * g).abs().sum() for w, g in pairs))
    if want_fisher:
        out["fisher"] = _fisher_sum(outputs, g_outputs, fan_in)
    if "grasp" in names:
        z = sum((g.detach() * g).sum() for g in g_weights if g is not None and g.requires_grad)
        if not isinstance(z, torch.Tensor) or not z.requires_grad:
            out["grasp"] = 0.0
        else:
            hg = torch.autograd.grad(z, weights, allow_unused=True)
            out["grasp"] = float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))
    return out


def score_many(
    names: Sequence[str], model: nn.Module, batch: Any, loss_fn: LossFn = F.cross_entropy, seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """Scores of several proxies on one network, sharing passes where proxies need the same ones
    (:data:`GRADIENT_FAMILY`: one forward and backward for all four). Returns the scores and the
    seconds each took (a shared computation's time divided among the proxies that shared it).
    Each computation seeds torch's RNG from ``seed`` as :func:`score` does; a proxy that raises
    ``FloatingPointError``, ``RuntimeError`` or ``ValueError`` scores NaN (the error is logged).
    """
    import logging
    import time

    log = logging.getLogger(__name__)
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    builtin = {n: proxy(n) for n in names}
    shared = [n for n in names if n in GRADIENT_FAMILY and builtin[n] is globals()[n]]
    has_targets = isinstance(batch, (tuple, list)) and len(batch) == 2 and batch[1] is not None
    if len(shared) >= 2 and has_targets and shared != ["naswot"]:
        start = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                scores.update(_gradient_family(shared, model, batch, loss_fn))
        except (FloatingPointError, RuntimeError, ValueError) as exc:
            log.warning("%s failed: %s", "+".join(shared), exc)
            scores.update(dict.fromkeys(shared, float("nan")))
        each = (time.perf_counter() - start) / len(shared)
        seconds.update(dict.fromkeys(shared, each))
    for name in names:
        if name in scores:
            continue
        start = time.perf_counter()
        try:
            scores[name] = score(name, model, batch, loss_fn, seed)
        except (FloatingPointError, RuntimeError, ValueError) as exc:
            log.warning("%s failed: %s", name, exc)
            scores[name] = float("nan")
        seconds[name] = time.perf_counter() - start
    return {n: scores[n] for n in names}, {n: seconds[n] for n in names}


def rank_vote(scores: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Ensemble of proxies over a population: the sum of each proxy's ranks (bigger = better)."""
    from scipy.stats import rankdata

    if not scores:
        raise ValueError("scores: at least one proxy is needed")
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"scores: every proxy must score the same archs, got lengths {sorted(lengths)}")
    return np.sum([rankdata(np.nan_to_num(np.asarray(v, float), nan=-np.inf)) for v in scores.values()], axis=0)
