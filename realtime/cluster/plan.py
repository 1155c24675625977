"""Which cameras share an actor, what each actor asks Ray for, and the config each actor runs.

Pure functions of the Config (no Ray here), so the placement rules are checked without a cluster.
Every resource in the config is per camera; an actor asks for the sum over its cameras, so a node
started with `--resources '{"edge": 8}'` takes eight `edge: 1` cameras whatever the grouping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config import CameraConfig, Config, cameras_of
from ..errors import ConfigError


@dataclass(frozen=True)
class Resources:
    """What one camera (or one actor, summed) asks Ray for."""

    num_cpus: float = 0.0
    num_gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()  # sorted (name, amount): hashable, so cameras group by it

    def __add__(self, other: Resources) -> Resources:
        custom = dict(self.custom)
        for name, amount in other.custom:
            custom[name] = custom.get(name, 0.0) + amount
        return Resources(self.num_cpus + other.num_cpus, self.num_gpus + other.num_gpus, tuple(sorted(custom.items())))

    def ray_options(self) -> dict:
        """The keyword arguments of `ActorClass.options` that reserve these resources."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": dict(self.custom)}

    def describe(self) -> str:
        parts = [f"num_cpus {self.num_cpus:g}"]
        if self.num_gpus:
            parts.append(f"num_gpus {self.num_gpus:g}")
        parts += [f"{name} {amount:g}" for name, amount in self.custom]
        return ", ".join(parts)


@dataclass(frozen=True)
class ActorPlan:
    """One Ray actor: its name (the first camera's, or `a+b` for a group) and its cameras."""

    name: str
    cameras: tuple[CameraConfig, ...]
    resources: Resources = field(default_factory=Resources)

    @property
    def camera_names(self) -> list[str]:
        return [camera.name for camera in self.cameras]


def camera_resources(config: Config, camera: str) -> Resources:
    """cluster.num_cpus/num_gpus/resources, with cluster.placement.<camera> over them."""
    cluster = config.cluster
    own = cluster.placement.get(camera)
    num_cpus = own.num_cpus if own is not None and own.num_cpus is not None else cluster.num_cpus
    num_gpus = own.num_gpus if own is not None and own.num_gpus is not None else cluster.num_gpus
    custom = {**cluster.resources, **(own.resources if own is not None else {})}
    return Resources(num_cpus, num_gpus, tuple(sorted((k, v) for k, v in custom.items() if v > 0)))


def plan_actors(config: Config) -> list[ActorPlan]:
    """Cameras in config order, grouped `cameras_per_actor` at a time among cameras that ask for the
    same resources (a GPU camera never drags a CPU camera onto a GPU node)."""
    cameras = cameras_of(config)
    names = {camera.name for camera in cameras}
    unknown = sorted(set(config.cluster.placement) - names)
    if unknown:
        raise ConfigError(
            f"config: cluster.placement names {', '.join(unknown)}, which no camera is called — "
            f"cameras are {', '.join(sorted(names))}"
        )
    by_need: dict[Resources, list[CameraConfig]] = {}
    for camera in cameras:
        by_need.setdefault(camera_resources(config, camera.name), []).append(camera)
    size = config.cluster.cameras_per_actor
    plans = []
    for need, group in by_need.items():
        for start in range(0, len(group), size):
            members = tuple(group[start : start + size])
            total = Resources()
            for _ in members:
                total = total + need
            plans.append(ActorPlan("+".join(c.name for c in members), members, total))
    order = {camera.name: i for i, camera in enumerate(cameras)}
    return sorted(plans, key=lambda plan: order[plan.cameras[0].name])


def actor_config(config: Config, plan: ActorPlan, restart: int = 0) -> Config:
    """The Config one actor's pipeline runs: its cameras only, headless, no events file or timeline of
    its own (events reach the driver's, which writes both), its own MQTT client id.

    Video: `output.video` is a folder, one `<camera>.mp4` per camera as on one machine. A restarted
    actor writes `<camera>.restart<N>.mp4` (a group: `restart<N>/<camera>.mp4`), so the file its
    dead predecessor left is not overwritten.
    """
    output = dataclasses.replace(config.output, headless=True, fullscreen=False, events=None, timeline=None)
    if config.output.video:
        folder = Path(config.output.video)
        if folder.suffix:
            raise ConfigError(
                f"output {folder} must be a folder for a cluster run — each camera writes <folder>/<camera>.mp4"
            )
        if len(plan.cameras) == 1:  # the pipeline takes the path as the file
            suffix = f".restart{restart}.mp4" if restart else ".mp4"
            output.video = str(folder / f"{plan.cameras[0].name}{suffix}")
        else:  # a folder it fills with one file per camera
            output.video = str(folder / f"restart{restart}" if restart else folder)
    # An MQTT broker drops a client when another connects with its id: one id per actor. The
    # job's availability is the driver's: an actor that ends must not mark the others offline.
    mqtt = dataclasses.replace(config.mqtt, availability=False)
    if mqtt.client_id:
        mqtt = dataclasses.replace(mqtt, client_id=f"{mqtt.client_id}-{plan.name}")
    # Media: each actor keeps its own index in <media>/<actor>/ (one SQLite writer per file, also on
    # shared storage), and a restarted actor finds its predecessor's there.
    media = config.media
    if media.dir:
        media = dataclasses.replace(media, dir=str(Path(media.dir) / plan.name))
    return dataclasses.replace(config, cameras=list(plan.cameras), output=output, mqtt=mqtt, media=media)
