"""Measuring a device on its own Ray node: the node offers a custom resource naming the device
(``ray start --address HEAD --resources '{"device:pi4": 1}'``) and the measurement is a Ray task
that asks for one unit of it, so it runs there, one at a time, and its answer (a table with the
node's own provenance, a validation, latencies) comes back to the store."""

from __future__ import annotations

import logging
from typing import Any

from nas.core.space import SearchSpace
from nas.device_measure import Job, measure_here
from nas.devices import Device
from nas.ray_address import RayConnectionError

logger = logging.getLogger(__name__)


def _remote_measure(settings: dict[str, Any], name: str, space_ref: dict[str, Any], job: Job) -> dict[str, Any]:
    """Runs on the device's node: rebuilds the space and measures there."""
    import socket

    import ray

    from nas.core.space import create_space

    device = Device.from_settings(name, settings)
    space = create_space(space_ref["name"], **({"config": space_ref["config"]} if space_ref["config"] else {}))
    context = ray.get_runtime_context()
    node = context.get_node_id()
    place = f"ray:{device.resource}@{socket.gethostname()}"
    out = measure_here(device, space, job, progress=False, place=place)
    out["node_id"] = node
    if "table" in out and out["table"].get("provenance") is not None:
        out["table"]["provenance"].update(ray_node_id=node, ray_resources=context.get_assigned_resources())
    return out


def _space_ref(space: SearchSpace) -> dict[str, Any]:
    config = getattr(space, "config_dict", None)
    return {"name": space.name, "config": config() if callable(config) else None}


def measure_on_ray(device: Device, space: SearchSpace, job: Job, address: str | None) -> dict[str, Any]:
    """Runs ``job`` on the node offering ``device.resource`` in the cluster at ``address``.

    Raises:
        RayConnectionError: no cluster at the address, or no node offering the resource.
    """
    import ray

    from nas.ray_runner import ray_init

    if not address:
        raise RayConnectionError(
            f"device {device.name} is measured on its Ray node (resource {device.resource}); give the "
            "cluster's head with --ray-address HOST:PORT"
        )
    assert device.resource is not None
    ray_init(address)
    try:
        offered = ray.cluster_resources()
        if device.resource not in offered:
            raise RayConnectionError(
                f"no node of the Ray cluster at {address} offers resource {device.resource!r} (it offers "
                f"{', '.join(sorted(k for k in offered if not k.startswith('node:'))) or 'nothing'}); start the "
                f"device's node with `ray start --address {address} --resources '{{\"{device.resource}\": 1}}'`"
            )
        task = ray.remote(num_cpus=0, resources={device.resource: 1}, max_retries=0)(_remote_measure)
        logger.info("measuring %s on the node offering %s", device.name, device.resource)
        answer: Any = ray.get(task.remote(device.to_dict(), device.name, _space_ref(space), job))
        return dict(answer)
    finally:
        ray.shutdown()
