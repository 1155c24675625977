"""Media cost of one camera, apart from pose: 20 s of a real 640x480 25 fps clip fed to MediaSink at
the camera's own rate, with two action episodes (a fixed box and label: pose is not what is measured).

    python -m realtime.bench.media_cost

Prints the ring's memory, the output thread's and the writer thread's CPU per frame, and ffmpeg's
CPU for the clips (docs/media.md). The cameras benchmark with `--media` measures the same inside
the whole pipeline, where other load on the machine blurs it.
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime.bench.clips import camera_clips, read_frames
from realtime.config import MediaConfig
from realtime.datasets import default_root
from realtime.media.writer import MediaSink
from realtime.types import FrameRecord, Prediction, Track

FPS = 25.0
SECONDS = 20.0
EPISODES = ((75, 200), (300, 400))  # frames where the person shows an action


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        clip = camera_clips(default_root(), Path(tmp), 1, SECONDS)[0]
        frames = read_frames(clip.path)
        children0 = _children_cpu()
        sink = MediaSink(MediaConfig(dir=str(Path(tmp) / "media")))
        output_s = 0.0
        t_wall = time.monotonic()
        for i, image in enumerate(frames):
            label = "JUMPING_JACKS" if any(a <= i < b for a, b in EPISODES) else "OTHER"
            box = np.array([200, 100, 400, 450], np.float32)
            track = Track(1, np.zeros((17, 2)), np.zeros(17), box, Prediction(label, 0.9 + 0.0001 * i))
            record = FrameRecord("cam0", i, i / FPS, image, t_source=i / FPS, tracks=[track])
            record.annotated = image
            t0 = time.thread_time()
            sink.write(record)
            output_s += time.thread_time() - t0
            time.sleep(max(0.0, t_wall + (i + 1) / FPS - time.monotonic()))  # at the camera's own rate
        sink.close()
        ffmpeg_s = _children_cpu() - children0
        seconds = len(frames) / FPS
        stats = sink.stats
        print(f"{len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} at {FPS:g} fps")
        print(f"ring: {stats.ring_bytes.get('cam0', 0) / 1e6:.2f} MB at most (pre_s 3 + 0.5 s, JPEG q75)")
        print(
            f"output thread: {1000 * output_s / len(frames):.3f} ms/frame; writer thread: "
            f"{1000 * stats.cpu_s / len(frames):.2f} ms/frame ({stats.cpu_s / seconds:.3f} cores); "
            f"ffmpeg: {ffmpeg_s / seconds:.3f} cores for {stats.clips} clips"
        )
        print(stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
