"""A real RTSP server for the soak run and the tests: loops a video clip as H.264 over RTP.

Runs under Debian's /usr/bin/python3 (where `gi` lives), never under the project venv:

    /usr/bin/python3 realtime/bench/rtsp_server.py --clip ../shared/datasets/videos/exercise.avi [--port 0]

The clip is decoded once into memory (scaled to --width/--height), then an appsrc
replays it forever at --fps, repeating frames when --fps exceeds the clip's own rate so
motion keeps its real speed. TCP only, bound to 127.0.0.1. Prints one line
`READY rtsp://127.0.0.1:PORT/clip` when clients may connect; SIGTERM exits cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
from fractions import Fraction

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def decode_clip(path: str, width: int | None, height: int | None) -> tuple[list[GLib.Bytes], Fraction, int, int]:
    """Every frame of the clip as I420 bytes, with the clip's frame rate and the frame size."""
    scale = f",width={width},height={height}" if width and height else ""
    pipeline = Gst.parse_launch(
        f"filesrc name=file ! decodebin ! videoconvert ! videoscale "
        f"! video/x-raw,format=I420,pixel-aspect-ratio=1/1{scale} ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    frames: list[GLib.Bytes] = []
    caps = None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        caps = caps or sample.get_caps()
        buffer = sample.get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        frames.append(GLib.Bytes.new(bytes(info.data)))
        buffer.unmap(info)
    bus = pipeline.get_bus()
    error = bus.pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if not frames or caps is None:
        detail = error.parse_error()[0].message if error else "no frames"
        raise SystemExit(f"rtsp_server: cannot decode {path}: {detail}")
    s = caps.get_structure(0)
    ok, num, den = s.get_fraction("framerate")
    rate = Fraction(num, den) if ok and num > 0 else Fraction(25)
    return frames, rate, s.get_int("width")[1], s.get_int("height")[1]


class ClipFeed:
    """Feeds one client's appsrc: output frame n shows clip frame floor(n * clip_fps / fps)."""

    def __init__(self, frames: list[GLib.Bytes], clip_fps: Fraction, fps: int) -> None:
        self.frames = frames
        self.step = clip_fps / fps
        self.duration = Gst.SECOND // fps
        self.n = 0

    def need_data(self, appsrc: Gst.Element, _length: int) -> None:
        index = int(self.n * self.step) % len(self.frames)
        buffer = Gst.Buffer.new_wrapped_bytes(self.frames[index])
        buffer.pts = buffer.dts = self.n * self.duration
        buffer.duration = self.duration
        self.n += 1
        appsrc.emit("push-buffer", buffer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="video file to loop")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 = any free port")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the stream")
    parser.add_argument("--width", type=int, help="scale frames to this width (with --height)")
    parser.add_argument("--height", type=int)
    parser.add_argument("--mount", default="/clip")
    args = parser.parse_args()

    Gst.init(None)
    frames, clip_fps, width, height = decode_clip(args.clip, args.width, args.height)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( appsrc name=src is-live=true format=time "
        f"caps=video/x-raw,format=I420,width={width},height={height},framerate={args.fps}/1,"
        f"pixel-aspect-ratio=1/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} threads=1 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    # TCP only: otherwise GStreamer also opens UDP ports on every interface.
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_shared(False)  # each client gets its own encoder, starting on a key frame

    def configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        appsrc.connect("need-data", ClipFeed(frames, clip_fps, args.fps).need_data)

    factory.connect("media-configure", configure)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(
        f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.mount} "
        f"{width}x{height} {args.fps}fps {len(frames)} frames",
        flush=True,
    )
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
