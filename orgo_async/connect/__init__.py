"""The WebSocket I/O layer: a computer's terminal, audio, events and VNC sockets.

Each connector drives a sans-I/O core of :mod:`orgo_async.protocol` over a
``websockets`` connection, with the token handling, rotation, reconnects and
keepalive of :class:`~orgo_async.connect._link.Link`.
"""

from ._connection import Connection
from ._link import ReconnectPolicy
from .audio import AudioStream
from .events import EventStream
from .terminal import Terminal
from .vnc import Vnc

__all__ = ["AudioStream", "Connection", "EventStream", "ReconnectPolicy", "Terminal", "Vnc"]
