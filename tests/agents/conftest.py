"""Fixtures shared with the VNC tests: the emulator on its xvnc backend (real X servers)."""

from ..vnc.conftest import xvnc_emulator  # noqa: F401 - a fixture, used by name
