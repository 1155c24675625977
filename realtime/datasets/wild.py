"""`wild`: folders of `<CLASS>/<clip>` videos from phones, gyms and studios, with a SOURCES.md.

The folder names are the classifier's classes (labels.yaml's `wild` section maps them, so a
misspelt folder is an error). Subjects come from SOURCES.md's table (a `file` column with
the clip's path and a `subject` column): clips of one person, studio or shoot share an
id, and cross-validation splits by it, never by clip. Clips are posed like any video
folder (see videos.py); a clip with bystanders keeps its labelled person only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ..features import PoseSequence
from . import DatasetError, default_pose_backend
from .labels import LabelTable
from .videos import Clip, find_clips, load_clips

SOURCES_FILE = "SOURCES.md"


def read_subjects(root: Path) -> dict[str, str]:
    """Clip path (relative to root, e.g. `BOXING/x.mp4`) -> subject id, from SOURCES.md's table."""
    path = root / SOURCES_FILE
    if not path.is_file():
        raise DatasetError(
            f"{path} not found: a wild folder needs a {SOURCES_FILE} with a table of "
            f"`file` and `subject` columns (subjects keep one person out of both sides of a split)"
        )
    subjects: dict[str, str] = {}
    columns: list[str] | None = None
    last_columns: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            columns = None  # a table ended
            continue
        if columns is None:
            lowered = [c.lower() for c in cells]
            # Rows appended below a blank line, without a header of their own, continue the table above.
            if last_columns and len(cells) == len(last_columns) and not {"file", "subject"} <= set(lowered):
                columns = last_columns
            else:
                columns = last_columns = lowered
                continue
        if set("".join(cells)) <= set("-: "):
            continue  # the header's separator row
        if "file" in columns and "subject" in columns and len(cells) == len(columns):
            subjects[cells[columns.index("file")]] = cells[columns.index("subject")]
    if not subjects:
        raise DatasetError(f"{path} has no table with `file` and `subject` columns")
    return subjects


def wild_clips(root: str | Path) -> list[Clip]:
    """Every clip under root with its class folder and its subject from SOURCES.md."""
    root = Path(root)
    subjects = read_subjects(root)
    clips = []
    for path in find_clips(root):
        rel = path.relative_to(root).as_posix()
        if rel not in subjects:
            raise DatasetError(f"{path}: not listed in {root / SOURCES_FILE}; add a row with its subject")
        clips.append(Clip(path, path.parent.name, subjects[rel]))
    return clips


def load_wild(
    root: str | Path,
    cache_dir: str | Path | None = None,
    pose_every: int = 1,
    backend: str | None = None,
    backend_options: dict | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    pose_workers: int = 1,
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    root = Path(root)
    return load_clips(
        root,
        wild_clips(root),
        "wild",
        cache_dir,
        pose_every,
        backend or default_pose_backend(),
        backend_options,
        progress,
        pose_workers,
        labels,
    )
