"""Without detectron2 the project still imports, and asking for it gives a one-line way out.

Runs in every environment: in the main one detectron2 is really absent; in .venv-d2 a child
process blocks the import to see the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ASK_FOR_DETECTRON2 = """
import sys
sys.modules["detectron2"] = None  # as if it were not installed (a no-op where it is not)
import realtime.pose.detectron2_backend as d2  # must import without detectron2
from realtime.errors import RealtimeError
from realtime.pose import create_backend
assert len(d2.keypoint_confidence([0.05])) == 1
try:
    create_backend("detectron2", {"weights": d2.RANDOM_INIT_FOR_TESTS})
except RealtimeError as exc:
    print("REALTIME-ERROR", exc)
"""


def test_detectron2_backend_without_detectron2_says_how_to_install():
    run = subprocess.run(
        [sys.executable, "-c", ASK_FOR_DETECTRON2], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("REALTIME-ERROR")]
    assert len(lines) == 1, run.stdout
    assert "make setup-detectron2" in lines[0] and "detectron2" in lines[0]
