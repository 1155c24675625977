"""The classifier's classes and each data format's mapping of its action names onto them.

Kept beside the loaders and free of torch: reading a CSV needs the classes, not the model.
The mapping itself is data, in labels.yaml next to this file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from ..errors import DatasetError

CLASSES: tuple[str, ...] = (
    "JUMPING",
    "JUMPING_JACKS",
    "BOXING",
    "WAVING_2HANDS",
    "WAVING_1HAND",
    "CLAPPING_HANDS",
    "OTHER",
)
OTHER = "OTHER"
LABELS_FILE = Path(__file__).resolve().parent / "labels.yaml"


@cache
def _label_table() -> dict:
    try:
        table = yaml.safe_load(LABELS_FILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"label mapping {LABELS_FILE} cannot be read ({exc}) — reinstall the package") from None
    for kind, mapping in table.items():
        for action, cls in mapping.items():
            if cls is not None and cls not in CLASSES:
                raise DatasetError(f"{LABELS_FILE}: {kind}.{action} maps to {cls!r}, not one of {list(CLASSES)}")
    return table


def label_map(kind: str) -> dict[str, str | None]:
    """The action-name -> class mapping of one data format (from labels.yaml)."""
    table = _label_table()
    if kind not in table:
        raise DatasetError(f"{LABELS_FILE} has no section {kind!r}; add one mapping its actions to classes")
    return {str(k): v for k, v in table[kind].items()}


def map_label(kind: str, action: str, where: str | Path) -> str | None:
    """Class of a source action name; an unmapped name is an error, never a silent OTHER."""
    mapping = label_map(kind)
    if action not in mapping:
        raise DatasetError(
            f"{where}: action {action!r} is not in the {kind!r} section of {LABELS_FILE}; add it (a class or null)"
        )
    return mapping[action]
