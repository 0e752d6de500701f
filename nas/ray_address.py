"""A Ray head's address checked in seconds, before anything waits on it (no Ray import)."""

from __future__ import annotations


class RayConnectionError(RuntimeError):
    """The Ray cluster named by ``--ray-address`` cannot be used (the message says why and the fix)."""


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Refuses, in seconds, an address where no Ray head answers (Ray itself retries for minutes).

    ``auto`` and ``ray://`` client addresses are left to Ray; ``HOST:PORT`` must accept a TCP
    connection within ``timeout_s``.

    Raises:
        RayConnectionError: naming the address, the reason and what to do.
    """
    import socket

    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayConnectionError(f"--ray-address {address!r}: expected HOST:PORT of the Ray head (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror
        raise RayConnectionError(
            f"--ray-address {address}: cannot reach a Ray head there ({reason}); start one with "
            f"`ray start --head --port {port}` on that machine, or check the address and firewall"
        ) from None


__all__ = ["RayConnectionError", "check_ray_address"]
