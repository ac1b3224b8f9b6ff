"""RFB 3.8 (VNC), sans I/O, for both ends of the connection.

One core per connection and role, each fed the bytes that arrive and
returning events, its ``send_*`` methods buffering the bytes to write; none
touches a socket or a clock:

- :class:`RFBClientProtocol` (:mod:`.client`): the viewer's end. It speaks to
  3.3, 3.7 and 3.8 servers, authenticates with security type None (1) or VNC
  Authentication (2), and decodes Raw, CopyRect, Hextile, ZRLE and Tight
  (lossless) rectangles plus the DesktopSize, ExtendedDesktopSize, LastRect
  and Cursor pseudo-encodings into RGB events.
- :class:`RFBServerProtocol` (:mod:`.server`): the desktop's end (the
  emulator's). It speaks 3.8 to 3.3/3.7/3.8 clients, checks a VNC password,
  parses client messages into events, and encodes rectangles as Raw, ZRLE or
  CopyRect into whatever pixel format the client asked for.

Both share :class:`RFBProtocol` (:mod:`.base`: the state machine, buffers,
limits and message loop). Around them: the events (:mod:`.events`), pixel
formats (:mod:`.pixels`), the encodings (:mod:`.encodings`), the constants
(:mod:`.constants`), :func:`vnc_auth_response` (:mod:`.auth`: the DES
challenge answer, which needs the optional ``cryptography`` dependency:
``pip install 'orgo_async[vnc]'``), X11 keysyms for keys, combos and text
(:mod:`.keysyms`), and :class:`Framebuffer` (:mod:`.framebuffer`), an RGB
mirror of the remote screen painted from a client's events.

Pixels in events are always packed RGB, 3 bytes a pixel, row by row.

References: RFC 6143 (with erratum 4951 for the DES key's bit order), and the
community RFB specification (rfbproto) for ZRLE's CPIXEL, Tight, LastRect,
ExtendedDesktopSize and SetDesktopSize.
"""

from . import constants, events
from .auth import vnc_auth_response
from .base import RFBProtocol, RFBState
from .client import RFBClientProtocol
from .constants import *  # noqa: F403  (the names in constants.__all__)
from .events import *  # noqa: F403  (the names in events.__all__)
from .framebuffer import Framebuffer
from .keysyms import key_combo, keysym, text_to_keys
from .pixels import DEFAULT_PIXEL_FORMAT, PixelFormat
from .server import RFBServerProtocol, ServerRect

# The constants and the events are exported whole, so their lists live in one place.
__all__ = [
    "DEFAULT_PIXEL_FORMAT",
    "Framebuffer",
    "PixelFormat",
    "RFBClientProtocol",
    "RFBProtocol",
    "RFBServerProtocol",
    "RFBState",
    "ServerRect",
    "key_combo",
    "keysym",
    "text_to_keys",
    "vnc_auth_response",
]
__all__ += constants.__all__
__all__ += events.__all__
