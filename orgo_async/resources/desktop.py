"""Desktop actions on one computer: screenshot, pointer, keyboard, wait, bash, exec.

By default the actions go through the platform routes ``/computers/{id}/...``,
which resolve the computer's VM themselves. ``route="proxy"`` sends the same
bodies through the documented desktop proxy
``/desktops/{instance_id}/proxy/{endpoint}`` instead (one hop fewer).

Every argument is checked before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any, Final, Literal

from .._checks import check_id, check_int, check_number, check_seconds
from .._config import Timeouts
from .._http import Response
from ..errors import ProtocolError, ResponseValidationError
from ..models import BashResult, Computer, ExecResult, Screenshot
from ..protocol.png import png_size
from ._base import Resource, path_id

if TYPE_CHECKING:
    from .._session import Session

__all__ = ["Desktop"]

Route = Literal["platform", "proxy"]
BUTTONS: Final = ("left", "right")
DIRECTIONS: Final = ("up", "down")
MODIFIERS: Final = frozenset(
    {"ctrl", "control", "shift", "alt", "super", "meta", "cmd", "win", "hyper"}
)
_KEY = re.compile(r"^[A-Za-z0-9_]+$|^[!-~]$")


def check_key(key: object) -> str:
    """A key or combo in Orgo's syntax (X11 keysym names joined by ``+``).

    Raises:
        ValueError: empty, an empty part, an unknown modifier, or a malformed key name.
    """
    if not isinstance(key, str) or not key.strip():
        raise ValueError(
            f"key must be a non-empty string such as 'Return' or 'ctrl+c'; got {key!r}"
        )
    if key == "+":
        return key
    parts = key.split("+")
    *mods, last = parts
    for mod in mods:
        if mod.lower() not in MODIFIERS:
            raise ValueError(
                f"key {key!r}: {mod!r} is not a modifier "
                f"(use {', '.join(sorted(MODIFIERS))}, joined with '+')"
            )
    if not last or not _KEY.match(last):
        raise ValueError(
            f"key {key!r}: {last!r} is not an X11 keysym name such as 'Return', 'Page_Up' or 'a'"
        )
    return key


class Desktop(Resource):
    """Actions on one computer's desktop; get one with :meth:`Orgo.desktop`.

    Screenshots of one computer are serialized (Orgo fails overlapping ones);
    the other actions are sent as they come.
    """

    def __init__(self, session: Session, computer: Computer, *, route: Route = "platform") -> None:
        if route not in ("platform", "proxy"):
            raise ValueError(f"route must be 'platform' or 'proxy'; got {route!r}")
        if route == "proxy" and not computer.instance_id:
            raise ValueError(f"computer {computer.id} has no instance_id for the proxy route")
        super().__init__(session)
        self.computer = computer
        self.route = route
        self._size = _resolution(computer.resolution)

    def __repr__(self) -> str:
        return f"<Desktop of computer {self.computer.id} via {self.route}>"

    # -- screen ------------------------------------------------------------------------

    async def screenshot(
        self,
        *,
        format: Literal["png", "jpeg"] = "png",
        scale: float | None = None,
        response_format: Literal["base64", "binary", "url"] = "base64",
        screen: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> Screenshot:
        """The screen as image bytes, with its size and MIME type.

        Whatever form Orgo answers in (base64, raw bytes, or a URL to fetch), you
        get bytes. A URL is fetched with the API key only when it points at the
        API's own origin. ``screen`` names one of the computer's screens
        (``orgo.screens.list``); by default the ``default`` one.
        """
        if format not in ("png", "jpeg"):
            raise ValueError(f"format must be 'png' or 'jpeg'; got {format!r}")
        if scale is not None:
            check_number("scale", scale, minimum=0.05, maximum=1.0)
        if response_format not in ("base64", "binary", "url"):
            raise ValueError(
                f"response_format must be base64, binary or url; got {response_format!r}"
            )
        params: dict[str, str] = {"response_format": response_format, "format": format}
        if scale is not None:
            params["scale"] = f"{scale:g}"
        if screen is not None:
            params["screen"] = check_id("screen", screen)
        async with self._session.screenshot_lock(self.computer.id):
            response = await self._get(
                self._path("screenshot"), cast_to=Response, params=params, timeout=timeout
            )
            return await self._decode_screenshot(response, timeout)

    async def _decode_screenshot(
        self, response: Response, timeout: Timeouts | float | None
    ) -> Screenshot:
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if kind.startswith("image/"):
            return _image(response.content, kind)
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise ResponseValidationError("Screenshot", ["no 'image' in the answer"])
        image: str = body["image"]
        mime = str(body.get("mime_type") or f"image/{body.get('format') or 'png'}")
        if image.startswith(("http://", "https://", "/")):
            url = image if not image.startswith("/") else self._session.transport.url(image)
            fetched = await self._get(url, cast_to=Response, timeout=timeout)
            kind = fetched.headers.get("Content-Type", mime).split(";")[0].strip()
            return _image(fetched.content, kind or mime)
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ResponseValidationError("Screenshot", [f"image is not base64: {exc}"]) from exc
        shot = _image(data, mime)
        width, height = body.get("width"), body.get("height")
        if isinstance(width, int) and isinstance(height, int):
            return Screenshot(data=data, width=width, height=height, mime_type=mime)
        return shot

    # -- pointer -----------------------------------------------------------------------

    async def click(
        self,
        x: int,
        y: int,
        *,
        button: str = "left",
        double: bool = False,
        screen: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> None:
        """Click at (x, y); ``double`` double-clicks (Orgo then ignores ``button``).

        ``screen`` (here and on the other pointer and keyboard actions) names one
        of the computer's screens (``orgo.screens``); by default the ``default`` one.
        """
        self._point("x", "y", x, y, screen)
        if button not in BUTTONS:
            raise ValueError(f"button must be one of {', '.join(BUTTONS)}; got {button!r}")
        if not isinstance(double, bool):
            raise ValueError(f"double must be True or False; got {double!r}")
        body = {"x": x, "y": y, "button": button, "double": double}
        await self._act("click", body, timeout, screen=screen)

    async def drag(
        self,
        start_x: int,
        start_y: int,
        end_x: int,
        end_y: int,
        *,
        button: str = "left",
        duration: float = 0.5,
        screen: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> None:
        """Press at the start point, move to the end point over ``duration`` seconds, release."""
        self._point("start_x", "start_y", start_x, start_y, screen)
        self._point("end_x", "end_y", end_x, end_y, screen)
        if button not in BUTTONS:
            raise ValueError(f"button must be one of {', '.join(BUTTONS)}; got {button!r}")
        body = {
            "start_x": start_x,
            "start_y": start_y,
            "end_x": end_x,
            "end_y": end_y,
            "button": button,
            "duration": check_seconds("duration", duration, maximum=10.0),
        }
        await self._act("drag", body, timeout, screen=screen)

    async def scroll(
        self,
        direction: str = "down",
        amount: int = 3,
        *,
        x: int | None = None,
        y: int | None = None,
        screen: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> None:
        """Scroll ``amount`` notches at (x, y), or where the pointer is.

        Give both coordinates or neither (Orgo moves a missing axis to 0).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        body: dict[str, Any] = {
            "direction": direction,
            "amount": check_int("amount", amount, minimum=1, maximum=100),
        }
        if (x is None) != (y is None):
            raise ValueError("give both x and y, or neither: Orgo moves a missing axis to 0")
        if x is not None and y is not None:
            self._point("x", "y", x, y, screen)
            body.update(x=x, y=y)
        await self._act("scroll", body, timeout, screen=screen)

    # -- keyboard ----------------------------------------------------------------------

    async def type(
        self,
        text: str,
        *,
        delay_ms: int = 12,
        screen: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> None:
        """Type ``text`` (unicode is fine), ``delay_ms`` between keystrokes."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty string; got {text!r}")
        body = {"text": text, "delay_ms": check_int("delay_ms", delay_ms, minimum=0, maximum=1000)}
        # The answer comes after the last keystroke: about len(text) * delay.
        typing = len(text) * delay_ms / 1000
        long_call = timeout if timeout is not None else self._long_call(typing)
        await self._act("type", body, long_call, screen=screen)

    async def key(
        self, key: str, *, screen: str | None = None, timeout: Timeouts | float | None = None
    ) -> None:
        """Press a key or combo: ``"Return"``, ``"ctrl+c"``, ``"ctrl+shift+t"``, ``"Page_Up"``."""
        await self._act("key", {"key": check_key(key)}, timeout, screen=screen)

    async def wait(self, seconds: float, *, timeout: Timeouts | float | None = None) -> None:
        """Have the desktop wait (0 to 60 s) before answering."""
        body = {"seconds": check_seconds("seconds", seconds, maximum=60.0)}
        await self._act(
            "wait", body, timeout if timeout is not None else self._long_call(body["seconds"])
        )

    # -- commands ----------------------------------------------------------------------

    async def bash(self, command: str, *, timeout: int = 200) -> BashResult:
        """Run a shell command (up to 300 s); ``success`` means it ran: check ``exit_code``."""
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"command must be a non-empty string; got {command!r}")
        seconds = check_int("timeout", timeout, minimum=1, maximum=300)
        body = await self._act(
            "bash", {"command": command, "timeout": seconds}, self._long_call(seconds)
        )
        code = body.get("exit_code")
        return BashResult(
            output=str(body.get("output") or ""),
            exit_code=code if isinstance(code, int) else None,
            timed_out=body.get("timed_out") is True,
        )

    async def exec(self, code: str, *, timeout: int = 10) -> ExecResult:
        """Run Python code (1 to 300 s); a timeout is reported in ``timed_out``, not raised."""
        if not isinstance(code, str) or not code.strip():
            raise ValueError(f"code must be a non-empty string; got {code!r}")
        seconds = check_int("timeout", timeout, minimum=1, maximum=300)
        body = await self._act("exec", {"code": code, "timeout": seconds}, self._long_call(seconds))
        return ExecResult(
            output=str(body.get("output") or ""),
            success=bool(body.get("success")),
            timed_out=bool(body.get("timeout")),
            error=_opt_str(body.get("error")),
            error_type=_opt_str(body.get("error_type")),
        )

    # -- private -----------------------------------------------------------------------

    def _path(self, endpoint: str) -> str:
        if self.route == "proxy":
            instance = path_id(self.computer.instance_id, "instance_id")
            return f"/desktops/{instance}/proxy/{endpoint}"
        return f"/computers/{path_id(self.computer.id, 'computer id')}/{endpoint}"

    def _long_call(self, seconds: float) -> Timeouts:
        # The answer comes only when the action is over: stretch read/request.
        t = self._session.timeouts
        slack = 15.0 + seconds
        return t.replace(read=slack, request=slack, total=max(t.total or 0.0, slack * 2))

    async def _act(
        self,
        endpoint: str,
        body: dict[str, Any],
        timeout: Timeouts | float | None,
        *,
        screen: str | None = None,
    ) -> dict[str, Any]:
        # The screen travels as ``?screen=`` (as on the screenshot), not in the body.
        params = None if screen is None else {"screen": check_id("screen", screen)}
        # Actions are not idempotent (a lost click must not click twice): no replays.
        response = await self._post(
            self._path(endpoint), cast_to=Response, json=body, params=params, timeout=timeout
        )
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    def _point(
        self, xname: str, yname: str, x: object, y: object, screen: str | None = None
    ) -> None:
        # Another screen has its own size, which only the server knows: it checks.
        other = screen is not None and screen != "default"
        width, height = (None, None) if other or self._size is None else self._size
        check_int(xname, x, minimum=0, maximum=None if width is None else width - 1)
        check_int(yname, y, minimum=0, maximum=None if height is None else height - 1)


def _resolution(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.split("x")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _image(data: bytes, mime: str) -> Screenshot:
    width = height = None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            width, height = png_size(data)
        except ProtocolError as exc:
            raise ResponseValidationError("Screenshot", [str(exc)]) from exc
        mime = "image/png"
    return Screenshot(data=data, width=width, height=height, mime_type=mime)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
