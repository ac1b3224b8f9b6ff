"""RFB 3.8 (VNC), sans I/O, for both ends of the connection.

One core per connection and role, each fed the bytes that arrive and
returning events, its ``send_*`` methods buffering the bytes to write; none
touches a socket or a clock:

- :class:`RFBClientProtocol` (:mod:`.client`): the viewer's end. It speaks to
  3.3, 3.7 and 3.8 servers, authenticates with security type None (1) or VNC
  Authentication (2), and decodes Raw, CopyRect, Hextile and ZRLE rectangles
  plus the DesktopSize, ExtendedDesktopSize, LastRect and Cursor
  pseudo-encodings into RGB events.
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
community RFB specification (rfbproto) for ZRLE's CPIXEL, LastRect,
ExtendedDesktopSize and SetDesktopSize.
"""

from .auth import vnc_auth_response
from .base import RFBProtocol, RFBState
from .client import RFBClientProtocol
from .constants import (
    BUTTON_LEFT,
    BUTTON_MIDDLE,
    BUTTON_RIGHT,
    DEFAULT_ENCODINGS,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_ZRLE,
    SECURITY_NONE,
    SECURITY_VNC_AUTH,
    WHEEL_DOWN,
    WHEEL_LEFT,
    WHEEL_RIGHT,
    WHEEL_UP,
)
from .events import (
    AuthenticationFailed,
    Bell,
    ClientCutText,
    ColourMap,
    CursorShape,
    DesktopResized,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    Key,
    Pointer,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    RFBEvent,
    Screen,
    ServerCutText,
    ServerInit,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    UpdateRequest,
)
from .framebuffer import Framebuffer
from .keysyms import key_combo, keysym, text_to_keys
from .pixels import DEFAULT_PIXEL_FORMAT, PixelFormat
from .server import RFBServerProtocol, ServerRect

__all__ = [
    "BUTTON_LEFT",
    "BUTTON_MIDDLE",
    "BUTTON_RIGHT",
    "DEFAULT_ENCODINGS",
    "DEFAULT_PIXEL_FORMAT",
    "ENCODING_COPYRECT",
    "ENCODING_CURSOR",
    "ENCODING_DESKTOP_SIZE",
    "ENCODING_EXTENDED_DESKTOP_SIZE",
    "ENCODING_HEXTILE",
    "ENCODING_LAST_RECT",
    "ENCODING_RAW",
    "ENCODING_ZRLE",
    "SECURITY_NONE",
    "SECURITY_VNC_AUTH",
    "WHEEL_DOWN",
    "WHEEL_LEFT",
    "WHEEL_RIGHT",
    "WHEEL_UP",
    "AuthenticationFailed",
    "Bell",
    "ClientCutText",
    "ColourMap",
    "CursorShape",
    "DesktopResized",
    "Framebuffer",
    "FramebufferUpdateEnd",
    "FramebufferUpdateStart",
    "Key",
    "PixelFormat",
    "Pointer",
    "RFBClientProtocol",
    "RFBEvent",
    "RFBProtocol",
    "RFBServerProtocol",
    "RFBState",
    "Ready",
    "RectCopy",
    "RectFill",
    "RectPixels",
    "Screen",
    "ServerCutText",
    "ServerInit",
    "ServerRect",
    "SetDesktopSize",
    "SetEncodings",
    "SetPixelFormat",
    "UpdateRequest",
    "key_combo",
    "keysym",
    "text_to_keys",
    "vnc_auth_response",
]
