"""Configuration: every default lives in config.yaml; command-line flags override it.

The schema is a tree of dataclasses. Loading checks every key and value and turns
any mistake into a one-line ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .types import DEFAULT_CAMERA

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The shipped classifier. Resolved here, not against the working folder, so a run from any
# folder (or with a config file elsewhere) still recognises actions.
DEFAULT_WEIGHTS = PROJECT_ROOT / "weights" / "action_classifier.pt"

# Pose backends, in one place: what the config, the CLI and the pool accept.
POSE_BACKENDS = ("movenet", "blazepose", "detectron2")
# The pose rate each of several cameras gets unless told otherwise. Grouped cross-validation
# (weights/MODEL_CARD.md) scores the classifier the same at 10 poses a second as at 25, and a
# little lower at 5; how many cameras a box carries at 10 is in docs/cameras.md.
MULTI_CAMERA_POSE_FPS = 10.0
CAMERA_NAME = re.compile(r"^[a-z0-9_-]+$")


def _opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    path: bool = False,
) -> Any:
    """A schema field: default value plus what the loader accepts."""
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "path": path}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CaptureConfig:
    queue_size: int = _opt(4, "frames held between stages when lossless (files)", minimum=1, maximum=1024)
    live_queue_size: int = _opt(
        1,
        "frames held between stages with drop_oldest (live): 1 = only the newest waits, "
        "so latency stays near one frame's processing time",
        minimum=1,
        maximum=1024,
    )
    policy: str = _opt(
        "auto",
        "when the queue is full: auto picks drop_oldest for live sources and paced files, lossless for files",
        choices=("auto", "lossless", "drop_oldest"),
    )
    pace: bool = _opt(
        False, "read files like a camera: at their native frame rate, dropping the oldest frames when behind"
    )
    open_timeout_ms: int = _opt(5000, "give up opening a stream after this long", minimum=100)
    read_timeout_ms: int = _opt(5000, "a stream read that blocks longer than this counts as lost", minimum=100)
    reconnect_attempts: int = _opt(-1, "reconnects after a live stream is lost; -1 = forever, 0 = never", minimum=-1)
    reconnect_delay_s: float = _opt(
        0.5,
        "wait before the second reconnect try (the first is immediate); doubles up to reconnect_max_delay_s",
        minimum=0.0,
    )
    reconnect_max_delay_s: float = _opt(1.0, "longest wait between reconnect attempts", minimum=0.0)


@dataclass
class Detectron2Config:
    config: str = _opt("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml", "model-zoo config file")
    weights: str | None = _opt(None, "local weights file; empty = the model-zoo download", path=True)
    score_thresh: float = _opt(0.5, "minimum person score", minimum=0.0, maximum=1.0)
    min_size_test: int = _opt(800, "shorter image side fed to the model; smaller is faster on CPU", minimum=64)
    device: str = _opt("auto", "auto = cuda when available", choices=("auto", "cpu", "cuda"))


@dataclass
class MoveNetConfig:
    long_side: int = _opt(
        256,
        "the image's long side fed to MoveNet (a multiple of 32); people ~110 px tall in 640x480 are found "
        "on 87% of frames at 256, 97% at 320, 99% at 384 (1.7x and 2.5x the time a frame)",
        minimum=128,
        maximum=1024,
    )
    small_people_long_side: int = _opt(
        320,
        "the long side used instead while someone small (box side under 50 px at long side 256, about a "
        "quarter of a 640x480 frame's height) was seen in the last 30 frames; 0 = never",
        minimum=0,
        maximum=1024,
    )
    person_threshold: float = _opt(
        0.15,
        "minimum person score (clearly visible people score 0.3-0.6, non-people at most 0.09 as measured)",
        minimum=0.0,
        maximum=1.0,
    )
    max_people: int = _opt(6, "people per frame (MoveNet MultiPose finds at most 6)", minimum=1, maximum=6)


@dataclass
class PoseConfig:
    backend: str = _opt(
        "movenet",
        "pose estimator: movenet (CPU, up to 6 people), blazepose (CPU, one person), detectron2 (GPU, many people)",
        choices=POSE_BACKENDS,
    )
    skip: int = _opt(0, "pose every (skip+1)-th frame and carry the last pose in between", minimum=0, maximum=100)
    workers: int = _opt(
        0,
        "pose threads, each with its own model; 0 = auto (mediapipe: one per core, up to 2; detectron2: 1)",
        minimum=0,
        maximum=16,
    )
    min_score: float = _opt(0.3, "joints below this score are drawn and used as missing", minimum=0.0, maximum=1.0)
    movenet: MoveNetConfig = field(default_factory=MoveNetConfig)
    detectron2: Detectron2Config = field(default_factory=Detectron2Config)


@dataclass
class ClassifierConfig:
    weights: str | None = _opt(
        None, "action classifier checkpoint; empty = the shipped weights/action_classifier.pt", path=True
    )
    threshold: float | None = _opt(
        None, "below this score a window is OTHER; empty = the checkpoint's own", minimum=0.0, maximum=1.0
    )
    smoothing_s: float = _opt(
        0.5, "time constant of each person's probability smoothing; 0 = none", minimum=0.0, maximum=10.0
    )


@dataclass
class RepsConfig:
    enabled: bool = _opt(True, "count each person's repetitions (any repeated movement) from their poses")
    min_period_s: float = _opt(0.25, "shortest repetition counted, in seconds", minimum=0.05, maximum=10.0)
    max_period_s: float = _opt(4.0, "longest repetition counted, in seconds", minimum=0.1, maximum=20.0)


@dataclass
class OutputConfig:
    headless: bool = _opt(False, "show no window")
    fullscreen: bool = _opt(False, "fill the screen (kiosk)")
    video: str | None = _opt(
        None,
        "write the annotated video here (.mp4, .avi, .mkv or .webm); with several "
        "cameras a folder, one <camera>.mp4 each",
        path=True,
    )
    hud: bool = _opt(
        False,
        "draw the HUD (FPS, pose rate, latency, drops) on recordings, web results and event clips too; "
        "the live window and live page always show it",
    )
    events: str | None = _opt(None, "write JSON-lines events here", path=True)
    timeline: str | None = _opt(None, "draw each person's actions over the run to this .png at the end", path=True)
    flush_events: bool = _opt(
        False, "also sync the events file to the disk after every write (events reach the file as they happen anyway)"
    )
    window_title: str = _opt("realtime", "title of the live window")


@dataclass
class MqttConfig:
    host: str | None = _opt(None, "MQTT broker host name or address; empty = no MQTT")
    port: int = _opt(1883, "broker port (8883 is usual with tls)", minimum=1, maximum=65535)
    topic_prefix: str = _opt(
        "realtime", "topics are <prefix>/<camera>/<type>, <prefix>/<camera>/state and <prefix>/availability"
    )
    client_id: str | None = _opt(None, "MQTT client id, unique per broker; empty = realtime-<machine>-<pid>")
    username: str | None = _opt(None, "broker user name; empty = anonymous")
    password: str | None = _opt(None, "broker password")
    tls: bool = _opt(False, "connect with TLS, checked against the system's CA certificates")
    qos: int = _opt(
        1, "0 = at most once; 1 = at least once (resent after a reconnect); 2 = exactly once", minimum=0, maximum=2
    )
    queue_size: int = _opt(
        10000, "events held while the broker is unreachable; beyond it the oldest is dropped", minimum=1
    )
    availability: bool = _opt(
        True,
        "publish the retained <prefix>/availability (online; offline on close or by last will); "
        "on a cluster the job's driver does, not its camera actors",
    )


@dataclass
class MediaConfig:
    dir: str | None = _opt(
        None,
        "keep a snapshot and a clip of every action episode here, indexed (docs/media.md); empty = none",
        path=True,
    )
    snapshots: bool = _opt(True, "write each episode's snapshot JPEG (best frame, box, crop of the person)")
    clips: bool = _opt(True, "write each episode's H.264 MP4 clip (needs the ffmpeg command)")
    pre_s: float = _opt(3.0, "seconds of video before an episode starts in its clip", minimum=0.0, maximum=30.0)
    post_s: float = _opt(3.0, "seconds of video after an episode ends in its clip", minimum=0.0, maximum=30.0)
    retain_days: float = _opt(10.0, "delete events (and their files) older than this; 0 = keep", minimum=0.0)
    max_gb: float = _opt(
        10.0, "delete the oldest events while their files take more than this; 0 = no limit", minimum=0.0
    )
    jpeg_quality: int = _opt(75, "JPEG quality of the in-memory frame ring and of snapshots", minimum=10, maximum=100)
    queue_size: int = _opt(
        64, "frames waiting for the media writer; beyond it frames are dropped from clips and counted", minimum=1
    )


@dataclass
class CameraConfig:
    name: str = _opt(DEFAULT_CAMERA, "[a-z0-9_-]+, unique; used in events, topics and file names")
    source: str = _opt("0", "camera index, video file, or rtsp:// / http(s):// URL")
    pose_fps: float | None = _opt(
        None,
        "at most this many posed frames a second from this camera; empty = the global pose_fps; 0 = no cap",
        minimum=0,
    )
    skip: int | None = _opt(None, "this camera's pose.skip", minimum=0, maximum=100)
    reconnect_attempts: int | None = _opt(None, "this camera's capture.reconnect_attempts", minimum=-1)


@dataclass
class PlacementConfig:
    num_cpus: float | None = _opt(None, "CPUs Ray reserves for this camera; empty = cluster.num_cpus", minimum=0.0)
    num_gpus: float | None = _opt(None, "GPUs Ray reserves for this camera; empty = cluster.num_gpus", minimum=0.0)
    resources: dict = _opt({}, "custom Ray resources for this camera, added to cluster.resources, e.g. {edge: 1}")


@dataclass
class ClusterConfig:
    cameras_per_actor: int = _opt(
        1, "cameras run by one Ray actor (one pipeline, one pose pool)", minimum=1, maximum=64
    )
    num_cpus: float = _opt(
        0.5,
        "CPUs Ray reserves per camera (placement only; Ray does not cap the use); a "
        "640x480 25 fps camera posed at 10 Hz used 0.34-0.37 here",
        minimum=0.0,
    )
    num_gpus: float = _opt(
        0.0, "GPUs Ray reserves per camera (GPU pose backends); 0.25 = four cameras a GPU", minimum=0.0
    )
    resources: dict = _opt(
        {}, "custom Ray resources per camera, e.g. {edge: 1} to run on nodes started with --resources '{\"edge\": N}'"
    )
    placement: dict = _opt({}, "per-camera overrides by camera name: {door: {num_gpus: 1, resources: {gpu_site: 1}}}")
    max_restarts: int = _opt(3, "restarts of a camera actor whose process dies; -1 = forever", minimum=-1)
    namespace: str = _opt("realtime", "Ray namespace of the job's actors; one job per namespace on a cluster")


@dataclass
class Config:
    source: str = _opt("0", "camera index, video file, or rtsp:// / http(s):// URL (one camera, named cam0)")
    cameras: list[CameraConfig] = _opt(
        [],
        "several cameras: a list of {name, source, pose_fps, skip, "
        "reconnect_attempts}; when given, `source` is not used",
    )
    pose_fps: float | None = _opt(
        None,
        f"pose rate cap per camera; empty = none for one camera, {MULTI_CAMERA_POSE_FPS:g} each for several; "
        "0 = no cap",
        minimum=0,
    )
    max_frames: int | None = _opt(None, "stop after this many frames", minimum=1)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    reps: RepsConfig = field(default_factory=RepsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}


def _allowed_types(annotation: str) -> list[type]:
    return [_TYPES[part.strip()] for part in annotation.split("|")]


def _check_value(key: str, value: Any, f: dataclasses.Field) -> Any:
    types = _allowed_types(str(f.type))  # annotations are strings here (`from __future__ import annotations`)
    meta = f.metadata
    if value is None:
        if type(None) in types:
            return None
        raise ConfigError(f"config: {key} must not be empty ({meta['help']})")
    if str in types and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # a camera index written as a number
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in types):
        wanted = " or ".join(t.__name__ if t is not type(None) else "empty" for t in types)
        raise ConfigError(f"config: {key} must be {wanted}, got {value!r} ({meta['help']})")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"config: {key} must be one of {', '.join(meta['choices'])}, got {value!r}")
    if meta["minimum"] is not None and isinstance(value, (int, float)) and value < meta["minimum"]:
        raise ConfigError(f"config: {key} must be at least {meta['minimum']:g}, got {value!r}")
    if meta["maximum"] is not None and isinstance(value, (int, float)) and value > meta["maximum"]:
        raise ConfigError(f"config: {key} must be at most {meta['maximum']:g}, got {value!r}")
    return value


def _apply(target: Any, data: dict, prefix: str, base_dir: Path | None) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix.rstrip('.') or 'the file'} must be a mapping of keys to values")
    fields = {f.name: f for f in dataclasses.fields(target)}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"config: unknown key {dotted!r}; allowed: {', '.join(fields)}")
        f = fields[key]
        if key == "cameras" and isinstance(target, Config):
            setattr(target, key, _cameras(value, dotted, base_dir))
            continue
        if isinstance(target, (ClusterConfig, PlacementConfig)) and key in ("resources", "placement"):
            setattr(target, key, _resources(value, dotted) if key == "resources" else _placement(value, dotted))
            continue
        if dataclasses.is_dataclass(getattr(target, key)):
            _apply(getattr(target, key), value, dotted + ".", base_dir)
            continue
        value = _check_value(dotted, value, f)
        if f.metadata["path"] and base_dir is not None and isinstance(value, str) and value:
            value = str(resolve_path(value, base_dir))
        if key == "source" and base_dir is not None and isinstance(value, str):
            value = _source_path(value, base_dir)  # a file, yes; a camera index or a URL, no
        setattr(target, key, value)


def _cameras(value: Any, key: str, base_dir: Path | None) -> list[CameraConfig]:
    if value is None:
        return []  # empty: the single `source`
    if not isinstance(value, list) or not value:
        raise ConfigError(f"config: {key} must be a list of cameras, each with a name and a source")
    cameras: list[CameraConfig] = []
    for i, item in enumerate(value):
        camera = CameraConfig()
        if not isinstance(item, dict) or "source" not in item:
            raise ConfigError(f"config: {key}[{i}] must have a source (and may have a name; else cam{i})")
        item = {"name": f"cam{i}", **item}
        _apply(camera, item, f"{key}[{i}].", None)
        if not CAMERA_NAME.match(camera.name):
            raise ConfigError(f"config: {key}[{i}].name {camera.name!r} must be lowercase letters, digits, _ or -")
        if any(c.name == camera.name for c in cameras):
            raise ConfigError(f"config: camera name {camera.name!r} is used twice — names must be unique")
        if base_dir is not None:
            camera.source = _source_path(camera.source, base_dir)
        cameras.append(camera)
    return cameras


def _resources(value: Any, key: str) -> dict[str, float]:
    """Custom Ray resources: {name: amount}, amounts at least 0."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config: {key} must be a mapping of resource names to amounts, e.g. {{edge: 1}}")
    out = {}
    for name, amount in value.items():
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
            raise ConfigError(f"config: {key}.{name} must be a number of at least 0, got {amount!r}")
        out[str(name)] = float(amount)
    return out


def _placement(value: Any, key: str) -> dict[str, PlacementConfig]:
    """Per-camera Ray resources, by camera name (checked against the cameras when the job starts)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config: {key} must map camera names to {{num_cpus, num_gpus, resources}}")
    out = {}
    for name, item in value.items():
        placement = PlacementConfig()
        _apply(placement, item or {}, f"{key}.{name}.", None)
        out[str(name)] = placement
    return out


def _source_path(source: str, base_dir: Path) -> str:
    """A relative video file written in a config file is taken from the file's folder."""
    if source.strip().isdigit() or "://" in source or not source:
        return source
    return str(resolve_path(source, base_dir))


def parse_camera_arg(value: str, index: int) -> CameraConfig:
    """`--source NAME=URL` or a bare `--source X` (named cam<index>)."""
    name, sep, source = value.partition("=")
    if not sep or "://" in name or not CAMERA_NAME.match(name):
        # `Door=rtsp://…` is a name with a capital, not a file called that: say so, not "file not found".
        if sep and re.fullmatch(r"[A-Za-z0-9_-]+", name) and not Path(value).exists():
            raise ConfigError(
                f"--source {value}: camera name {name!r} must be lowercase letters, digits, _ or - "
                f"(e.g. {name.lower()}={source})"
            )
        return CameraConfig(name=f"cam{index}", source=value)
    return CameraConfig(name=name, source=source)


def cameras_of(config: Config) -> list[CameraConfig]:
    """The cameras to run: the `cameras` list, or the single `source` as cam0. Per-camera
    settings left empty take the global ones; a pose rate of 0 (no cap) comes back as None."""
    cameras = config.cameras or [CameraConfig(name=DEFAULT_CAMERA, source=config.source)]
    default_fps = config.pose_fps
    if default_fps is None and len(cameras) > 1:
        default_fps = MULTI_CAMERA_POSE_FPS
    return [
        dataclasses.replace(
            camera,
            pose_fps=(camera.pose_fps if camera.pose_fps is not None else default_fps) or None,
            skip=camera.skip if camera.skip is not None else config.pose.skip,
            reconnect_attempts=camera.reconnect_attempts
            if camera.reconnect_attempts is not None
            else config.capture.reconnect_attempts,
        )
        for camera in cameras
    ]


def weights_path(config: Config) -> Path:
    """The classifier checkpoint to load: as configured, else the shipped one."""
    return Path(config.classifier.weights) if config.classifier.weights else DEFAULT_WEIGHTS


def resolve_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def default_config_path() -> Path | None:
    """./config.yaml when present, else the one beside the package (a source checkout)."""
    for candidate in (Path.cwd() / "config.yaml", PROJECT_ROOT / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults ← YAML file ← overrides (a nested dict, e.g. from the command line).

    Relative paths in the file are taken from the file's folder; those in overrides from
    the working directory.
    """
    config = Config()
    file_path = Path(path) if path is not None else default_config_path()
    if file_path is not None:
        if not file_path.is_file():
            raise ConfigError(f"config file {file_path} not found — pass an existing file to --config")
        try:
            data = yaml.safe_load(file_path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config file {file_path} is not valid YAML{where} — fix its syntax") from None
        _apply(config, data, "", file_path.resolve().parent)
    if overrides:
        _apply(config, overrides, "", None)  # flags: paths stay relative to the working folder
        _flags_beat_cameras(config, overrides)
    _check_mqtt_host(config.mqtt.host)
    _check_reps(config.reps)
    return config


def _check_reps(reps: RepsConfig) -> None:
    if reps.min_period_s >= reps.max_period_s:
        raise ConfigError(
            f"config: reps.min_period_s ({reps.min_period_s:g}) must be below reps.max_period_s "
            f"({reps.max_period_s:g}) — widen the range"
        )


# A camera's own setting in the file, and the flag that sets the same for every camera.
_PER_CAMERA = {
    "pose_fps": ("pose_fps",),
    "skip": ("pose", "skip"),
    "reconnect_attempts": ("capture", "reconnect_attempts"),
}


def _flags_beat_cameras(config: Config, overrides: dict) -> None:
    """A flag is the operator's latest word: `--pose-fps 0` uncaps every camera, also one whose
    entry in the file has its own pose_fps."""
    for name, keys in _PER_CAMERA.items():
        node: Any = overrides
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            for camera in config.cameras:
                setattr(camera, name, None)


def with_overrides(config: Config, overrides: dict) -> Config:
    """A copy of a loaded config with `overrides` applied, as load_config applies them.

    A server loads (and checks) its file once at start; each job then changes its own copy.
    """
    changed = copy.deepcopy(config)
    _apply(changed, overrides, "", None)
    return changed


def _check_mqtt_host(host: str | None) -> None:
    """A host name or address alone: a URL or host:port here would be looked up as a name, and fail
    only at run time, as an unreachable broker on the default port."""
    if not host:
        return
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)  # an IPv6 address has colons of its own
        return
    if "://" in host or "/" in host or ":" in host or any(c.isspace() for c in host):
        raise ConfigError(
            f"config: mqtt.host {host!r} must be a host name or address alone — "
            f"set mqtt.host (e.g. 127.0.0.1) and mqtt.port apart, or pass --mqtt mqtt://host:port"
        )
