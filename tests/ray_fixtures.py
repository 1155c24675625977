"""The local Ray cluster for tests: realtime/bench/ray_cluster.py, shared with the cluster benchmark."""

from realtime.bench.ray_cluster import LocalRayCluster, nodes_by_resource, ray_env

__all__ = ["LocalRayCluster", "nodes_by_resource", "ray_env"]
