"""A new device from a few measurements: ``nas latency calibrate``.

The fleet is every other device of the store with a usable table of the space. Their tables
predict a pool of the space's archs; with the archs' latency features these fit the fleet prior
(:class:`predictors.latency.fleet.FleetPrior`), whose design chooses the ``k`` archs to measure
on the new device. The model fitted from those ``k`` measurements is stored as the device's
latency model of the space (kind ``fleet``), with its expected error (leave-one-out over the
``k``). With no fleet, ``k`` random archs are measured and today's per-device fit
(:class:`predictors.learned.Predictor`) is stored instead, and says so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)

POOL = 2000  # archs the fleet predicts and the design chooses from


def calibrate(
    catalog: Any, name: str, space: SearchSpace, k: int = 10, *, seed: int = 0, rounds: int = 1, **measure: Any
) -> dict[str, Any]:
    """Measures ``k`` archs on the device ``name`` and stores its latency model of ``space``;
    returns what was stored (``data``) and its summary."""
    from nas.device_measure import measure_archs
    from nas.device_models import features_of
    from predictors.latency.fleet import FleetPrior
    from predictors.learned import Predictor

    if k < 3:
        raise ValueError(f"--archs: at least 3 measurements, got {k} (10 is usual)")
    device = catalog.get(name)
    fleet_names = [d.name for d in catalog.all() if d.name != name and catalog.usable(d.name, space.space_id)]
    rng = np.random.default_rng(seed)
    if fleet_names:
        pool = space.sample_unique(POOL, rng)
        tables = [catalog.table(n, space) for n in fleet_names]
        latencies = np.array([[t.predict(space, a) for t in tables] for a in pool])
        features = features_of(space, pool)
        prior = FleetPrior.fit(features, latencies, fleet_names)
        chosen = [pool[i] for i in prior.design(features, k)]
        logger.info("fleet of %d devices (%s): measuring %d chosen archs on %s", len(fleet_names),
                    ", ".join(fleet_names), k, name)  # fmt: skip
        measured = measure_archs(device, space, chosen, rounds, **measure)
        model = prior.fit_device(features_of(space, chosen), measured)
        data = {"device": name, "method": "fleet", "fleet": fleet_names, "model": model.to_dict()}
        expected = model.expected
    else:
        chosen = space.sample_unique(k, rng)
        logger.info("no fleet for %s: measuring %d random archs on %s, fitted alone", space.space_id, k, name)
        measured = measure_archs(device, space, chosen, rounds, **measure)
        predictor = Predictor(space, None, seed=seed, target=f"latency_ms@{name}")
        predictor.fit(chosen, measured)
        data = {"device": name, "method": "per_device", "fleet": [], "model": predictor.record()}
        expected = _loo(space, chosen, measured, seed)
    summary = {
        "method": data["method"], "fleet": data["fleet"], "measured": len(chosen), "expected": expected,
        "archs": [a.to_dict() for a in chosen], "latency_ms": measured, "usable": True,
    }  # fmt: skip
    latency_id = catalog.save_model(name, space.space_id, data, summary)
    return {"id": latency_id, "data": data, "summary": summary}


def _loo(space: SearchSpace, archs: list[Arch], y: list[float], seed: int) -> dict[str, float]:
    """Leave-one-out relative errors of the per-device fit over its own measurements."""
    from predictors.learned import Predictor

    errors = []
    for i in range(len(archs)):
        rest = [a for j, a in enumerate(archs) if j != i]
        p = Predictor(space, None, seed=seed, target="latency_ms@device")
        p.fit(rest, [v for j, v in enumerate(y) if j != i])
        errors.append(abs(float(p.predict([archs[i]])[0][0]) - y[i]) / y[i])
    return {"loo_within_10pct": float(np.mean(np.array(errors) <= 0.10)),
            "loo_median_rel_error": float(np.median(errors))}  # fmt: skip
