"""The classifier's classes and each data format's mapping of its action names onto them.

Kept beside the loaders and free of torch: reading a CSV needs the classes, not the model.
The mapping itself is data: labels.yaml next to this file, or a file of the user's own
(`--labels FILE`) for classes of their own. A checkpoint stores its classes, so live
inference follows whatever table it was trained with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ..errors import DatasetError

OTHER = "OTHER"  # everything else, and what a window below the rejection threshold is called
LABELS_FILE = Path(__file__).resolve().parent / "labels.yaml"
# Class names go into event payloads, MQTT topics' JSON and file names of plots.
CLASS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@dataclass(frozen=True)
class LabelTable:
    """The classes (OTHER last) and, per data format, source action name -> class (None: left out)."""

    classes: tuple[str, ...]
    sections: dict[str, dict[str, str | None]] = field(hash=False)
    path: Path
    # Classes that need the legs in view (`whole_body: [...]`): never given to a person seen from the waist up.
    whole_body: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> LabelTable:
        """A labels file: optional `classes: [...]`, then one section per data format.

        Without `classes`, they are the mapped names in order of first appearance. OTHER is
        always a class (rejected windows are called so) and always the last one.
        """
        path = Path(path)
        try:
            table = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DatasetError(f"label mapping {path} cannot be read ({exc}) — check the file") from None
        if not isinstance(table, dict):
            raise DatasetError(f"label mapping {path} must be a mapping of data formats to actions; see {LABELS_FILE}")
        listed = table.pop("classes", None)
        whole_body = table.pop("whole_body", [])
        sections: dict[str, dict[str, str | None]] = {}
        for kind, mapping in table.items():
            if not isinstance(mapping, dict):
                raise DatasetError(f"{path}: section {kind!r} must map action names to classes (or null)")
            sections[str(kind)] = {str(action): None if c is None else str(c) for action, c in mapping.items()}
        mapped = list(dict.fromkeys(c for m in sections.values() for c in m.values() if c is not None))
        if listed is not None and not (isinstance(listed, list) and all(isinstance(c, str) for c in listed)):
            raise DatasetError(f"{path}: classes must be a list of names, e.g. [SQUAT, LUNGE, OTHER]")
        names = [*dict.fromkeys(listed if listed is not None else mapped)]
        names = [c for c in names if c != OTHER] + [OTHER]
        for name in names:
            if not CLASS_NAME.match(name):
                raise DatasetError(f"{path}: class name {name!r} must be a letter then letters, digits or _")
        for kind, mapping in sections.items():
            for action, c in mapping.items():
                if c is not None and c not in names:
                    raise DatasetError(f"{path}: {kind}.{action} maps to {c!r}, not one of its classes {names}")
        if len(names) < 2:
            raise DatasetError(f"{path} maps no action to a class other than {OTHER}; a classifier needs two")
        if not (isinstance(whole_body, list) and all(c in names and c != OTHER for c in whole_body)):
            raise DatasetError(
                f"{path}: whole_body must list classes of the file (not {OTHER}) that need the legs in view, "
                "e.g. [JUMPING, JUMPING_JACKS]"
            )
        return cls(tuple(names), sections, path, tuple(whole_body))

    def mapping(self, kind: str) -> dict[str, str | None]:
        """The action-name -> class mapping of one data format."""
        if kind not in self.sections:
            raise DatasetError(f"{self.path} has no section {kind!r}; add one mapping its actions to classes")
        return self.sections[kind]

    def map(self, kind: str, action: str, where: str | Path) -> str | None:
        """Class of a source action name; an unmapped name is an error, never a silent OTHER."""
        mapping = self.mapping(kind)
        if action not in mapping:
            raise DatasetError(
                f"{where}: action {action!r} is not in the {kind!r} section of {self.path}; add it (a class or null)"
            )
        return mapping[action]


@cache
def default_labels() -> LabelTable:
    """The packaged table: the article's six classes and OTHER."""
    try:
        return LabelTable.read(LABELS_FILE)
    except DatasetError as exc:
        raise DatasetError(f"{exc} — reinstall the package") from None


def labels_from(path: str | Path | None) -> LabelTable:
    """The user's labels file if given, else the packaged one."""
    return LabelTable.read(path) if path else default_labels()


CLASSES: tuple[str, ...] = default_labels().classes
WHOLE_BODY: tuple[str, ...] = default_labels().whole_body


def map_label(kind: str, action: str, where: str | Path, table: LabelTable | None = None) -> str | None:
    """Class of a source action name by `table` (default: the packaged one)."""
    return (table or default_labels()).map(kind, action, where)
