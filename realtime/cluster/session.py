"""Connecting to Ray: an existing cluster (`auto`, `HOST:PORT`, `ray://HOST:10001`) or a local one.

Ray is an optional dependency (`pip install 'realtime[cluster]'`); without it, or when the cluster
cannot be reached, the user gets one line saying what to do.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ..errors import RealtimeError
from .plan import ActorPlan

# A head that does not accept a TCP connection within this long is not there.
PROBE_TIMEOUT_S = 5.0
INSTALL_HINT = "install it with pip install 'realtime[cluster]' (ray==2.60.0)"


class ClusterError(RealtimeError):
    """The Ray cluster cannot be reached or cannot run the job as configured."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(f"the cluster command needs Ray — {INSTALL_HINT}") from None
    return ray


def connect(address: str | None, namespace: str, local_cpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start a local one (returns True when it started one).

    A local cluster gets `local_cpus` logical CPUs (default: this machine's cores).
    """
    ray = import_ray()
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True, "namespace": namespace}
    if address is None:
        ray.init(num_cpus=local_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        return True
    _probe(address)
    try:
        ray.init(address=address, **quiet)
    except ValueError as exc:  # ray:// without Ray Client's grpcio, or a malformed address
        if "ray[client]" in str(exc):
            raise ClusterError(
                f"--address {address} needs Ray Client — install it with pip install "
                f"'ray[client]==2.60.0', or use the head's HOST:PORT (6379) from a cluster node"
            ) from None
        raise ClusterError(f"--address {address}: {exc}") from None
    except (ConnectionError, RuntimeError) as exc:
        if address == "auto":
            raise ClusterError(
                "--address auto found no Ray cluster started on this machine — start one with "
                "`ray start --head`, or give --address HEAD:6379"
            ) from None
        raise ClusterError(
            f"cannot join the Ray cluster at {address} ({_first_line(exc)}) — check the address, "
            f"and that RAY_AUTH_TOKEN is the cluster's token (`ray get-auth-token` on the head)"
        ) from None
    return False


def _probe(address: str) -> None:
    """Fail in seconds when nothing listens at HOST:PORT: Ray itself keeps retrying the GCS for
    minutes, deaf to Ctrl-C and SIGTERM while it does."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # `auto`, or ray:// (Ray Client has its own timeout)
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(
            f"nothing answers at {address} ({exc.strerror or exc}) — start a head there with "
            f"`ray start --head --port {port}`, or check --address"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def check_feasible(plans: list[ActorPlan], local: bool) -> list[str]:
    """Actors that no node of the cluster could ever hold. On a cluster we started ourselves
    that is an error; on an existing one only a warning, since an autoscaler may add the node."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]  # type: ignore[no-untyped-call]
    problems = []
    for plan in plans:
        need = {"CPU": plan.resources.num_cpus, "GPU": plan.resources.num_gpus, **dict(plan.resources.custom)}
        if not any(all(node.get(name, 0.0) >= amount for name, amount in need.items() if amount > 0) for node in nodes):
            problems.append(
                f"camera actor {plan.name} needs {plan.resources.describe()}, more than any node of this cluster offers"
            )
    if problems and local:
        raise ClusterError(
            f"{problems[0]} — a local cluster is this machine only: lower cluster.num_cpus/"
            f"num_gpus, drop cluster.resources/placement, or give --address of a cluster that has them"
        )
    return problems
