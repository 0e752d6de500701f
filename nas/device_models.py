"""A device's calibrated latency model (``nas latency calibrate``), answering like a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.space import SearchSpace


def features_of(space: SearchSpace, archs: list[Arch], probe: Any = None) -> np.ndarray:
    """The latency features (as the per-device fit uses them) of each arch: rows of a matrix.
    ``probe``: a latency ``Predictor`` of the space to reuse (it is built when not given)."""
    from predictors.learned import Predictor

    probe = probe or Predictor(space, None, target="latency_ms@device")
    return np.stack([probe.features(a) for a in archs])


@dataclass
class FleetLatency:
    """A device's calibrated latency model of a space: ``predict(space, arch)`` in ms, like a table."""

    device_name: str
    space_id: str
    method: str  # fleet | per_device
    model: Any  # DeviceModel (fleet) or Predictor (per_device)
    probe: Any = None  # the space's latency Predictor whose features the fleet model reads (made once)

    @property
    def metric_device(self) -> str:
        return self.device_name

    def predict(self, space: SearchSpace, arch: Arch | dict[str, Any]) -> float:
        if space.space_id != self.space_id:
            raise ValueError(f"device {self.device_name}'s model is for space {self.space_id}, not {space.space_id}")
        arch = space.make(arch)
        if self.method == "fleet":
            if self.probe is None:
                from predictors.learned import Predictor

                self.probe = Predictor(space, None, target="latency_ms@device")
            return float(self.model.predict(features_of(space, [arch], self.probe))[0])
        return float(self.model.predict([arch])[0][0])

    @classmethod
    def from_record(cls, data: dict[str, Any], space: SearchSpace) -> FleetLatency:
        from predictors.latency.fleet import DeviceModel
        from predictors.learned import Predictor

        name = str(data["device"])
        if data["method"] == "fleet":
            return cls(name, space.space_id, "fleet", DeviceModel.from_dict(data["model"]))
        return cls(name, space.space_id, "per_device", Predictor.from_record(data["model"], f"device {name}", space))
