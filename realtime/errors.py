"""Errors that reach the user as one line: what went wrong and how to fix it."""


class RealtimeError(Exception):
    """Base for every failure the command line reports without a traceback."""

    exit_code = 2


class ConfigError(RealtimeError):
    """A config key or value is not allowed."""


class SourceError(RealtimeError):
    """The video source cannot be opened or read."""


class OutputError(RealtimeError):
    """An output (video file, events file, server port) cannot be written or opened."""


class WeightsError(RealtimeError):
    """A weights file is missing or does not fit the model."""


class DisplayError(RealtimeError):
    """A window was asked for where none can be shown."""


class DatasetError(RealtimeError):
    """A data file or folder is missing, malformed, or holds an unmapped action."""
