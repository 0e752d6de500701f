"""A new device's latency from a few measurements, with a fleet of known devices as the prior.

Every device's latency over a space is close to linear in the same features (the latency
features of :class:`predictors.learned.Predictor`: op counts in the space's runtime views, MACs,
parameters), with coefficients that differ by device: how much a depthwise kernel, a skip or a
pruned node costs there. The devices of a fleet, fitted on every arch they measured (or their
tables predict), give a sample of such coefficient vectors (each divided by the device's mean
latency, so a phone and a GPU compare). Their mean and covariance are a Gaussian prior on a new
device's coefficients: a multi-task Bayesian linear model (HELP's idea of transferring across
devices, as conjugate linear regression rather than a meta-learned network: no training beyond
least squares, a closed-form leave-one-out, and an error estimate from the k measurements alone).

A new device is fitted from ``k`` measured archs (relative least squares) under that prior,
with a penalty strength and a prior mean (the fleet's mean, or one fleet device's own
coefficients: a new phone is often most like one known phone) chosen by leave-one-out error on
the ``k`` measurements; that error is reported as the expected error
(:attr:`DeviceModel.expected`). :meth:`FleetPrior.design` picks the ``k`` archs to measure so
that they represent the space (the medoids of ``k`` clusters of a pool), not a random sample. A
D-optimal design (the archs the prior knows least about) was tried and dropped: it measures the
space's oddest archs, and on NAS-Bench-201 devices that prune dead nodes (Pixel 3, Raspberry Pi
4) their fits then missed the typical archs (within ±10%: 17-22% against 44-49% with medoids). With no
fleet there is no prior: callers fall back to the per-device fit (:class:`~predictors.learned.Predictor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
SHRINK = 1.0  # covariance shrinkage toward its diagonal: room for a device unlike the fleet
RELATIVE_FLOOR = 0.1  # fits: a latency below this share of the median weighs as if it were that


def _rows(features: np.ndarray, scale: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(scale) - 1:
        raise ValueError(f"features: expected (archs, {len(scale) - 1}), got shape {np.shape(features)}")
    return np.hstack([np.ones((len(features), 1)), features]) / scale


def _relative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares of relative error (rows weighted by 1/y, floored as in ``fit_device``), a
    little ridge for stability."""
    weight = 1.0 / np.maximum(y, RELATIVE_FLOOR * np.median(y))
    xw, yw = x * weight[:, None], y * weight
    gram = xw.T @ xw
    return np.asarray(np.linalg.solve(gram + 1e-8 * np.trace(gram) / len(gram) * np.eye(len(gram)), xw.T @ yw))


@dataclass
class DeviceModel:
    """A device's latency as a line over the standardised latency features (ms)."""

    coef: list[float]  # intercept first, on features divided by ``scale``
    scale: list[float]  # per column (intercept first): the fleet pool's standard deviation
    prior: str = "none"  # the prior mean used: fleet (the mean), a fleet device's name, or none
    penalty: float = 0.0  # the prior's weight against the k measurements
    measured: int = 0  # k
    expected: dict[str, float] = field(default_factory=dict)  # leave-one-out errors over the k

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Latency (ms) of archs from their latency features (archs x features)."""
        return np.clip(_rows(features, np.asarray(self.scale)) @ np.asarray(self.coef), 1e-9, None)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceModel:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class FleetPrior:
    """The fleet's devices as a prior over a new device's coefficients (module docstring)."""

    devices: list[str]
    scale: np.ndarray  # per column, intercept first
    coefs: np.ndarray  # devices x columns, each device's fit divided by its mean latency
    mean: np.ndarray
    precision: np.ndarray  # inverse of the shrunk covariance of ``coefs``

    @classmethod
    def fit(
        cls, features: np.ndarray, fleet: np.ndarray, devices: Sequence[str], *, shrink: float = SHRINK
    ) -> FleetPrior:
        """From a pool of archs' latency features (archs x features) and the fleet's latencies of
        them (archs x devices, ms)."""
        features = np.asarray(features, dtype=np.float64)
        fleet = np.asarray(fleet, dtype=np.float64)
        if fleet.ndim != 2 or fleet.shape[1] != len(devices) or len(devices) < 1:
            raise ValueError(f"fleet: expected (archs, {len(devices)}) latencies got {fleet.shape}")
        if len(features) != len(fleet):
            raise ValueError(f"fleet: {len(features)} feature rows but {len(fleet)} latency rows")
        if np.any(fleet <= 0) or not np.all(np.isfinite(fleet)):
            raise ValueError("fleet: every latency must be a positive finite number of ms")
        sd = features.std(0)
        scale = np.concatenate([[1.0], np.where(sd > 0, sd, 1.0)])
        x = _rows(features, scale)
        coefs = np.stack([_relative_fit(x, y / y.mean()) for y in fleet.T])
        mean = coefs.mean(0)
        cov = np.cov(coefs.T) if len(devices) > 1 else np.diag(coefs[0] ** 2)
        cov = np.atleast_2d(cov)
        cov = cov + shrink * np.diag(np.diag(cov)) + 1e-9 * np.eye(len(mean))
        return cls(list(devices), scale, coefs, mean, np.linalg.inv(cov))

    def design(self, features: np.ndarray, k: int, *, exclude: Sequence[int] = ()) -> list[int]:
        """``k`` rows of ``features`` (a pool of archs) to measure on a new device: the medoids of
        ``k`` clusters of the pool (k-means on the standardised latency features), so the
        measured archs represent the kinds of archs the pool holds. Deterministic; ``exclude``:
        rows not to choose."""
        from sklearn.cluster import KMeans

        if k < 1:
            raise ValueError(f"archs: must be >= 1, got {k}")
        keep = np.setdiff1d(np.arange(len(features)), np.asarray(list(exclude), dtype=int))
        if k > len(keep):
            raise ValueError(f"archs: the pool has {len(keep)} archs to choose from, asked for {k}")
        x = _rows(features, self.scale)[keep, 1:]
        centres = KMeans(k, n_init=4, random_state=0).fit(x).cluster_centers_
        chosen: list[int] = []
        for centre in centres:
            distance = ((x - centre) ** 2).sum(1)
            distance[chosen] = np.inf  # positions in ``keep``
            chosen.append(int(np.argmin(distance)))
        return [int(keep[i]) for i in chosen]

    def fit_device(self, features: np.ndarray, latency_ms: Sequence[float] | np.ndarray) -> DeviceModel:
        """A new device's model from its measured archs (their features and latencies, ms)."""
        x = _rows(features, self.scale)
        y = np.asarray(latency_ms, dtype=np.float64)
        if len(y) != len(x):
            raise ValueError(f"fleet fit: {len(x)} measured archs but {len(y)} latencies")
        if len(y) < 3:
            raise ValueError(f"fleet fit: needs 3 measured archs or more, got {len(y)}")
        if np.any(y <= 0) or not np.all(np.isfinite(y)):
            raise ValueError("fleet fit: every measured latency must be a positive finite number of ms")
        # relative rows (target 1 for every arch); an arch far faster than the others (NB201: a cell
        # whose output no path reaches) weighs as one at a tenth of their median, not more
        weight = 1.0 / np.maximum(y, RELATIVE_FLOOR * np.median(y))
        a, target = x * weight[:, None], y * weight
        best: tuple[float, str, float, np.ndarray, np.ndarray] | None = None
        priors = [("fleet", self.mean), *zip(self.devices, self.coefs)]
        for name, prior in priors:
            fitted = a @ prior
            s = float(fitted @ target / (fitted @ fitted))  # the device's speed relative to the prior
            residual0 = target - s * fitted
            for penalty in PENALTIES:
                inverse = np.linalg.inv(a.T @ a + penalty * self.precision / s**2)
                delta = inverse @ a.T @ residual0
                hat = np.einsum("ij,jk,ik->i", a, inverse, a)
                loo = (residual0 - a @ delta) / np.clip(1.0 - hat, 1e-6, None)  # relative errors, each left out
                score = float(np.sqrt(np.mean(loo**2)))
                if best is None or score < best[0]:
                    best = (score, name, penalty, s * prior + delta, np.abs(loo))
        assert best is not None
        score, name, penalty, coef, relative = best
        return DeviceModel(
            coef=coef.tolist(), scale=self.scale.tolist(), prior=name, penalty=penalty, measured=len(y),
            expected={"loo_within_10pct": float(np.mean(relative <= 0.10)),
                      "loo_median_rel_error": float(np.median(relative)), "loo_rms_rel_error": score},
        )  # fmt: skip
