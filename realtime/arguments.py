"""The command lines' parser: a wrong flag is one line naming it and where the flags are listed."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser without its usage block on errors, and without abbreviated flags
    (`--headles` would otherwise pass for `--headless`, and a typo for another flag)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} — see {self.prog} --help\n")
        sys.exit(2)
