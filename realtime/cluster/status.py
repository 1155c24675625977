"""`python -m realtime cluster status`: every camera of the job running on a cluster, from its status board."""

from __future__ import annotations

import json
import time
from typing import Any

from .board import BOARD_NAME, REPORT_INTERVAL_S
from .session import ClusterError, connect, import_ray, shutdown

# A camera whose actor has not reported for this long is shown as unresponsive (its process died
# and Ray is restarting it, or its node is gone).
STALE_AFTER_S = 3 * REPORT_INTERVAL_S
COLUMNS = ("camera", "node", "state", "fps", "pose/s", "frames", "restarts", "pid")


def read_status(address: str, namespace: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The board's rows, with a camera's state `unresponsive` when its reports stopped."""
    ray = import_ray()
    connect(address, namespace)
    try:
        try:
            board = ray.get_actor(BOARD_NAME, namespace=namespace)
        except ValueError:
            raise ClusterError(
                f"no realtime job runs in Ray namespace {namespace!r} at {address} — start one with "
                f"`python -m realtime cluster --config cams.yaml --address {address}`"
            ) from None
        rows = ray.get(board.snapshot.remote(), timeout=timeout_s)
    finally:
        shutdown()
    now = time.time()
    for row in rows:
        if row["state"] in ("starting", "running", "reconnecting") and now - row["updated"] > STALE_AFTER_S:
            row["state"] = "unresponsive"
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    cells = [COLUMNS] + [
        (
            r["camera"],
            f"{r['node_ip']} {r['node_id'][:8]}".strip(),
            r["state"],
            f"{r['fps']:.1f}",
            f"{r['pose_fps']:.1f}",
            str(r["frames_out"]),
            str(r["restarts"]),
            str(r["pid"] or ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines += [f"{r['camera']}: {r['error']}" for r in rows if r.get("error")]
    for r in rows:
        if r.get("events"):
            lines.append(f"{r['camera']}: latest events: " + "; ".join(_event_text(e) for e in r["events"]))
    return "\n".join(lines)


def _event_text(event: dict[str, Any]) -> str:
    """An episode in a status line: label, UTC start, duration (or going on), its clip."""
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event["start_time"]))
    duration = "going on" if event.get("duration_s") is None else f"{event['duration_s']:.1f} s"
    clip = f" {event['clip']}" if event.get("clip") else ""
    return f"{event['label']} {start} UTC ({duration}){clip}"


def print_status(address: str, namespace: str, as_json: bool) -> int:
    rows = read_status(address, namespace)
    print(json.dumps(rows) if as_json else format_table(rows))
    return 0
