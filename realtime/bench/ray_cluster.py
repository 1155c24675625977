"""A real multi-node Ray cluster on this machine (127.0.0.1 only), for tests/test_cluster.py and
`python -m realtime.bench.cluster`.

`ray start` runs each node's daemons (GCS, raylet, log monitor, ...) detached, so the fixture
finds them afterwards by the cluster's own temp folder, which every one of them names on its
command line, and stops exactly those processes by pid: never `ray stop`, which would end every
Ray process on the machine, another user's too. Token authentication (on by default in Ray
2.60) is turned off for this throwaway cluster with RAY_AUTH_MODE=disabled; a real deployment
shares the token instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .rtsp import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ.get("REALTIME_RAY_BIN", str(Path(sys.executable).parent)))
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # The actors import `realtime` from this checkout, as the driver does.
    "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
}


def ray_env() -> dict[str, str]:
    return {**os.environ, **RAY_ENV}


class LocalRayCluster:
    """A head node and any number of worker nodes, all on 127.0.0.1, with their own temp folder."""

    def __init__(self) -> None:
        # Short: Ray puts Unix sockets in it, and a socket path may not exceed 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rtray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = self.temp_dir / "ray-start.log"

    def _ray_start(self, *args: str) -> None:
        cmd = [
            str(VENV_BIN / "ray"),
            "start",
            "--node-ip-address",
            "127.0.0.1",
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
            *args,
        ]
        with open(self.log, "a") as log:
            result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=ray_env(), timeout=120, check=False)
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"ray start failed ({' | '.join(tail)})")

    def start_head(self, num_cpus: int, resources: dict[str, float] | None = None) -> str:
        args = [
            "--head",
            "--port",
            str(self.port),
            "--num-cpus",
            str(num_cpus),
            "--include-dashboard=false",
            "--dashboard-agent-listen-port",
            str(free_port()),
        ]
        self._ray_start(*args, *self._resources(resources))
        return self.address

    def add_node(self, num_cpus: int, resources: dict[str, float] | None = None) -> None:
        self._ray_start(
            "--address",
            self.address,
            "--num-cpus",
            str(num_cpus),
            "--dashboard-agent-listen-port",
            str(free_port()),
            *self._resources(resources),
        )

    @staticmethod
    def _resources(resources: dict[str, float] | None) -> list[str]:
        return ["--resources", json.dumps(resources)] if resources else []

    def pids(self) -> list[int]:
        """Every process of this cluster. Daemons and workers name our temp folder on their command
        line; the agents retitle themselves (`ray::DashboardAgent`) but keep log files open in it."""
        marker = str(self.temp_dir)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() or any(
                    os.readlink(fd).startswith(marker) for fd in (entry / "fd").iterdir()
                ):
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                continue
        return found

    def stop(self) -> None:
        """SIGTERM to each of our processes, SIGKILL to any left after 5 s (the agents ignore SIGTERM)."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                    os.kill(pid, sig)
            if wait_for(lambda: not self.pids(), timeout=grace, interval=0.2):
                return


def nodes_by_resource(address: str) -> dict[str, str]:
    """node id -> 'edge' or 'head', asked of the cluster in a fresh process (so this one never joins Ray)."""
    code = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(json.dumps({n['NodeID']: ('edge' if 'edge' in n['Resources'] else 'head') "
        "for n in ray.nodes() if n['Alive']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ray_env(), timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
