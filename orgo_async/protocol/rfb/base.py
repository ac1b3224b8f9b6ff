"""What both ends of an RFB connection share: the state machine, buffers, limits, dispatch.

:class:`RFBProtocol` is the sans-I/O base of
:class:`~.client.RFBClientProtocol` and :class:`~.server.RFBServerProtocol`.
Each role's parser is a generator over a
:class:`~orgo_async.protocol._reader.StreamReader`, started at construction
and resumed by :meth:`RFBProtocol.receive_data`; once the handshake is over,
both read messages through the same loop, :meth:`RFBProtocol._dispatch`.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable, Generator, Mapping
from typing import ClassVar, Final

from ...errors import ProtocolError
from .._base import Role
from .._reader import StreamReader
from ._wire import RAW_BAND_BYTES, U32, VERSION_RE, cut_text, password_bytes
from .auth import des_ecb
from .events import RFBEvent
from .pixels import PixelCodec, PixelFormat

__all__ = ["RFBProtocol", "RFBState"]


class RFBState(enum.Enum):
    """Where a connection is in the RFB handshake."""

    PROTOCOL_VERSION = "protocol-version"
    SECURITY = "security"
    VNC_AUTH = "vnc-auth"
    SECURITY_RESULT = "security-result"
    INIT = "init"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


# The handshake, for both roles (RFC 6143 §7.1-7.3). `<` is what a state waits for
# (states are named after it), `>` what is sent on the way, `->` the next state.
#
# state              client                                 server
# -----------------  -------------------------------------  -------------------------------------
# PROTOCOL_VERSION   < "RFB 003.00x\n"                      (> "RFB 003.008\n" at construction)
#                    > min(server's, 3.8)                   < the client's version
#                    -> SECURITY                            > types (3.7+) or the type (3.3)
#                                                           -> SECURITY
# SECURITY           < types (3.7+) or the u32 type (3.3)   < the client's choice (3.7+ only)
#                    > our choice (3.7+)                    -> VNC_AUTH (> challenge) for type 2
#                    -> VNC_AUTH for type 2                 -> SECURITY_RESULT (> OK) for None, 3.8
#                    -> SECURITY_RESULT for None on 3.8     -> INIT for None on 3.3 and 3.7
#                    -> INIT for None on 3.3 and 3.7        -> CLOSED (> failure) if not offered
# VNC_AUTH           < challenge; > DES answer              < the DES answer
#                    -> SECURITY_RESULT                     -> SECURITY_RESULT (> OK) if right,
#                                                           -> CLOSED (> failure) if wrong
# SECURITY_RESULT    < u32, and a reason on a 3.8 failure   (nothing to wait for)
#                    > ClientInit -> INIT                   -> INIT
# INIT               < ServerInit                           < ClientInit
#                    > SetPixelFormat, SetEncodings         > ServerInit
#                    -> CONNECTED                           -> CONNECTED
# CONNECTED          normal messages until the stream ends at a message boundary -> CLOSED
#
# A protocol error moves any state to FAILED, for good; the end of the stream anywhere
# but at a CONNECTED message boundary is one. `_TRANSITIONS` is this table as data, and
# `_set_state` enforces it.
_TRANSITIONS: Final[Mapping[RFBState, frozenset[RFBState]]] = {
    RFBState.PROTOCOL_VERSION: frozenset({RFBState.SECURITY}),
    RFBState.SECURITY: frozenset(
        {RFBState.VNC_AUTH, RFBState.SECURITY_RESULT, RFBState.INIT, RFBState.CLOSED}
    ),
    RFBState.VNC_AUTH: frozenset({RFBState.SECURITY_RESULT, RFBState.CLOSED}),
    RFBState.SECURITY_RESULT: frozenset({RFBState.INIT}),
    RFBState.INIT: frozenset({RFBState.CONNECTED}),
    RFBState.CONNECTED: frozenset({RFBState.CLOSED}),
    RFBState.CLOSED: frozenset(),
    RFBState.FAILED: frozenset(),
}

Handler = Callable[[], Generator[None, None, None]]
"""Parses the rest of one message whose type byte was read."""


class RFBProtocol:
    """The RFB protocol for one connection, either end: what the two roles share.

    Feed it the bytes that arrive and it returns events; its ``send_*`` methods
    buffer the bytes to write. It never touches a socket or a clock. Make a
    :class:`~.client.RFBClientProtocol` or a :class:`~.server.RFBServerProtocol`;
    this class is their base.

    Every length read from the wire is checked against the limits before
    anything is buffered for it, so :attr:`buffered_bytes` stays bounded.
    """

    role: ClassVar[Role]
    """Which end this core plays."""

    _CUT_TEXT: ClassVar[int]
    """The message type of this role's clipboard text (ClientCutText or ServerCutText)."""

    def __init__(
        self,
        *,
        password: str | bytes | None,
        read_limit: int,
        max_width: int,
        max_height: int,
        max_cut_text: int,
        max_cursor: int,
    ) -> None:
        self.state = RFBState.PROTOCOL_VERSION
        self.version: tuple[int, int] | None = None
        """The protocol version agreed on, such as ``(3, 8)``."""
        self.width = 0
        self.height = 0
        self.name = ""
        self.pixel_format: PixelFormat | None = None
        """The pixel format rectangles travel in (the client's, once it set one)."""
        self.encodings: tuple[int, ...] = ()
        """The encodings the client announced (``SetEncodings``)."""
        self.shared = True
        """Whether the client shares the desktop with others (its ClientInit)."""

        self.max_width = max_width
        self.max_height = max_height
        self.max_cut_text = max_cut_text
        self.max_cursor = max_cursor

        self._password = None if password is None else password_bytes(password)
        if self._password is not None:
            des_ecb()  # fail now, with the install hint, rather than mid-handshake

        self._out: list[bytes] = []
        self._events: list[RFBEvent] = []
        self._failed: ProtocolError | None = None
        self._eof = False
        self._codec: PixelCodec | None = None
        self._reader = StreamReader(limit=read_limit)
        self._parser = self._parse()  # started by the subclass, once it is set up

    def _parse(self) -> Generator[None, None, None]:
        """This role's parser: the handshake, then :meth:`_dispatch` of its messages."""
        raise NotImplementedError

    def _start(self) -> None:
        """Run the parser to its first read (a server has already buffered its greeting)."""
        next(self._parser)

    # -- the four verbs -------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer, however they were split.

        Raises:
            ProtocolError: the peer broke the protocol (or failed the handshake:
                no common security type, a rejected password, a refusal with the
                server's reason). The core is then failed for good; every later
                call raises the same error.
            RuntimeError: data after :meth:`receive_eof`.
        """
        if self._failed is not None:
            raise self._failed
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof()")
        if self.state is RFBState.CLOSED:
            return  # a refused peer's leftovers: nothing more is parsed
        self._reader.feed_data(data)
        self._run()

    def receive_eof(self) -> None:
        """Tell the core the peer closed the stream.

        Raises:
            ProtocolError: the stream ended inside a message or the handshake.
        """
        if self._eof or self._failed is not None:
            return
        self._eof = True
        if self.state is RFBState.CLOSED:
            return
        self._reader.feed_eof()
        self._run()

    def events_received(self) -> list[RFBEvent]:
        """The events parsed since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The bytes to write to the peer, in order; the buffer is emptied.

        Everything buffered comes as one chunk (an empty list when there is
        nothing): one write, or one WebSocket frame, carries it all.
        """
        out, self._out = self._out, []
        if len(out) > 1:
            return [b"".join(out)]
        return out

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for the rest of a message (bounded by the limits)."""
        return len(self._reader.buffer)

    # -- both roles' messages -------------------------------------------------------------

    def send_cut_text(self, text: str) -> None:
        """Send clipboard text to the peer (ClientCutText, or ServerCutText from a server).

        Raises:
            ValueError: ``text`` has characters outside Latin-1 (RFB can't carry them).
        """
        self._require_connected()
        self._out.append(cut_text(self._CUT_TEXT, text))

    # -- internals: state -----------------------------------------------------------------

    def _emit(self, event: RFBEvent) -> None:
        """Report an event (decoders get this method: the list it appends to is replaced
        by each :meth:`events_received`)."""
        self._events.append(event)

    def _set_state(self, state: RFBState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"no RFB transition from {self.state.name} to {state.name}")
        self.state = state

    def _require_connected(self) -> None:
        if self.state is not RFBState.CONNECTED:
            raise RuntimeError(f"the RFB connection is not ready (state {self.state.name})")

    def _run(self) -> None:
        """Resume the parser; turn whatever it raises into one recorded ProtocolError."""
        try:
            next(self._parser)
        except StopIteration:
            return
        except ProtocolError as exc:
            self._fail(exc)
            raise
        except EOFError as exc:
            where = self.state.name
            during = "a message" if self.state is RFBState.CONNECTED else "the handshake"
            error = ProtocolError(f"the connection closed in the middle of {during} ({where})")
            self._fail(error)
            raise error from exc
        except (ValueError, struct.error, zlib.error) as exc:
            error = ProtocolError(f"malformed RFB data ({self.state.name}): {exc}")
            self._fail(error)
            raise error from exc

    def _fail(self, error: ProtocolError) -> None:
        self._failed = error
        self.state = RFBState.FAILED
        # Nothing more will be parsed: drop what was waiting.
        self._reader.buffer = bytearray()

    # -- internals: reading ---------------------------------------------------------------

    def _dispatch(self, handlers: Mapping[int, Handler], peer: str) -> Generator[None, None, None]:
        """Read message types until EOF, handing each message to its parser."""
        read = self._reader.read_exact
        while True:
            if (yield from self._reader.at_eof()):
                self._set_state(RFBState.CLOSED)
                return
            kind = (yield from read(1))[0]
            handler = handlers.get(kind)
            if handler is None:
                raise ProtocolError(f"unknown {peer} message type {kind}")
            yield from handler()

    def _read_version(self) -> Generator[None, None, tuple[int, int]]:
        """The peer's ProtocolVersion, as the version this core speaks to it (at most 3.8)."""
        greeting = yield from self._reader.read_exact(12)
        match = VERSION_RE.fullmatch(greeting)
        if match is None:
            raise ProtocolError(f"not an RFB ProtocolVersion: {greeting!r}")
        major, minor = int(match[1]), int(match[2])
        if (major, minor) < (3, 3):
            raise ProtocolError(f"unsupported RFB version {major}.{minor}")
        if major == 3 and minor < 7:
            return (3, 3)  # 3.5 and friends speak 3.3 (RFC 6143 §7.1.1)
        if major == 3 and minor < 8:
            return (3, 7)
        return (3, 8)  # 3.8, Apple's 3.889, RealVNC's 4.x and 5.0 all speak 3.8

    def _read_cut_text(self) -> Generator[None, None, str]:
        (length,) = U32.unpack((yield from self._reader.read_exact(7))[3:])
        if length > self.max_cut_text:
            raise ProtocolError(f"clipboard text of {length} bytes exceeds {self.max_cut_text}")
        return (yield from self._reader.read_exact(length)).decode("latin-1")

    @staticmethod
    def _read_limit(*sizes: int) -> int:
        """The reader's limit: a band of raw pixels, or the largest of ``sizes``."""
        return max(RAW_BAND_BYTES, *sizes)
