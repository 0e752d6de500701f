"""The fleet prior: a new device's latency from a few measurements, the other devices as prior."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.latency.fleet import DeviceModel, FleetPrior
from predictors.learned import within_share


def _family(rng: np.random.Generator, archs: int = 3000, features: int = 20, devices: int = 12):
    """Archs' features and devices whose per-feature costs are mixtures of three device kinds
    (a compute-bound, a memory-bound and an overhead-bound one), as real fleets are."""
    x = rng.integers(0, 6, size=(archs, features)).astype(float)
    kinds = rng.uniform(0.1, 2.0, size=(3, features))

    def device(seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        mix = r.dirichlet(np.ones(3))
        cost = (mix @ kinds) * r.uniform(0.5, 20.0)  # a faster or slower device of that mix
        return 1.0 + x @ cost

    fleet = np.stack([device(s) for s in range(devices)], 1)
    return x, fleet, device(1000)


def test_new_device_from_ten_measurements_beats_fitting_it_alone():
    rng = np.random.default_rng(0)
    x, fleet, new = _family(rng)
    prior = FleetPrior.fit(x, fleet, [f"dev{i}" for i in range(fleet.shape[1])])
    rows = prior.design(x, 10)
    noisy = new[rows] * (1 + 0.01 * rng.standard_normal(10))
    model = prior.fit_device(x[rows], noisy)
    test = np.setdiff1d(np.arange(len(x)), rows)
    assert within_share(model.predict(x[test]), new[test]) >= 0.95
    # alone, ten measurements cannot pin 21 coefficients: least squares without the prior is far worse
    alone, *_ = np.linalg.lstsq(np.hstack([np.ones((10, 1)), x[rows]]), noisy, rcond=None)
    alone_error = np.median(np.abs(np.hstack([np.ones((len(test), 1)), x[test]]) @ alone / new[test] - 1))
    assert np.median(np.abs(model.predict(x[test]) / new[test] - 1)) < alone_error / 5
    assert model.measured == 10
    assert 0.0 <= model.expected["loo_within_10pct"] <= 1.0
    assert model.expected["loo_median_rel_error"] < 0.1


def test_the_expected_error_warns_of_a_device_unlike_the_fleet():
    rng = np.random.default_rng(1)
    x, fleet, _ = _family(rng)
    prior = FleetPrior.fit(x, fleet, [f"dev{i}" for i in range(fleet.shape[1])])
    rows = prior.design(x, 10)
    strange = 1.0 + np.sin(x[:, 0] * 3) * 5 + x[:, 1] ** 3  # not linear in the features at all
    strange = strange - strange.min() + 1.0
    model = prior.fit_device(x[rows], strange[rows])
    assert model.expected["loo_median_rel_error"] > 0.1  # the k measurements alone say it is unreliable


def test_design_is_deterministic_distinct_and_respects_exclusions():
    rng = np.random.default_rng(2)
    x, fleet, _ = _family(rng, archs=500)
    prior = FleetPrior.fit(x, fleet, [f"dev{i}" for i in range(fleet.shape[1])])
    first = prior.design(x, 8)
    assert first == prior.design(x, 8)
    assert len(set(first)) == 8
    again = prior.design(x, 8, exclude=first[:3])
    assert not set(again) & set(first[:3])
    with pytest.raises(ValueError, match="asked for 600"):
        prior.design(x, 600)


def test_model_round_trips_through_json_and_bad_input_is_named():
    rng = np.random.default_rng(3)
    x, fleet, new = _family(rng, archs=400)
    prior = FleetPrior.fit(x, fleet, [f"dev{i}" for i in range(fleet.shape[1])])
    model = prior.fit_device(x[:12], new[:12])
    again = DeviceModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="3 measured archs or more"):
        prior.fit_device(x[:2], new[:2])
    with pytest.raises(ValueError, match="positive finite"):
        prior.fit_device(x[:5], np.array([1.0, 2.0, -1.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="2 measured archs but 3 latencies"):
        prior.fit_device(x[:2], new[:3])
    with pytest.raises(ValueError, match="positive finite"):
        FleetPrior.fit(x, np.vstack([fleet[:-1], np.zeros((1, fleet.shape[1]))]), [f"d{i}" for i in range(12)])
    with pytest.raises(ValueError, match="features"):
        model.predict(x[:, :3])
