"""realtime: live human action recognition from camera streams."""

__version__ = "0.1.0"
