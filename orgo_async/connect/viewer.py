"""A live view of a computer's screen in a browser: a noVNC viewer URL.

Orgo documents no hosted viewer page of its own: what it documents is the VNC
socket, ``{connection_url}/ws/websockify?token=<vnc_password>``, with the same
password as the VNC credential. :func:`viewer_url` points a noVNC application
page (``vnc.html``: by default the one the noVNC project serves; pass ``page``
to use one you host) at that socket, with noVNC's own settings: ``host``,
``port``, ``encrypt``, ``path``, ``password``, ``autoconnect``, ``view_only``,
``shared``.

The settings go in the URL's fragment (``#...``), which noVNC reads as it reads
a query string: a browser never sends a fragment to the server that serves the
page, so the token stays out of that server's logs and out of ``Referer``
headers. The page's own scripts do read it: use a page you trust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .._checks import check_id, optional
from ..models import Computer

if TYPE_CHECKING:
    from .._client import Orgo

__all__ = ["NOVNC_PAGE", "ViewerUrl", "viewer_url"]

NOVNC_PAGE: Final = "https://novnc.com/noVNC/vnc.html"
"""The noVNC application page the noVNC project serves (client-side only)."""


class ViewerUrl:
    """A viewer URL: a credential, since it carries the computer's token.

    ``str()`` (and so an f-string) and :attr:`url` give the URL; the ``repr``
    names the computer and hides the token, so that logging or printing the
    object by mistake leaks nothing. The token rotates when the computer
    starts or restarts: a URL made before then stops working.
    """

    __slots__ = ("_url", "computer_id", "view_only", "websocket_url")

    def __init__(self, url: str, *, computer_id: str, view_only: bool, websocket_url: str) -> None:
        self._url = url
        self.computer_id = computer_id
        self.view_only = view_only
        self.websocket_url = websocket_url
        """The VNC socket the viewer opens, without its token."""

    @property
    def url(self) -> str:
        """The URL to open in a browser (it holds the token: do not log it)."""
        return self._url

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        mode = "view-only" if self.view_only else "interactive"
        return f"<ViewerUrl {mode} of computer {self.computer_id} (token hidden)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ViewerUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


async def viewer_url(
    orgo: Orgo,
    computer: Computer | str,
    *,
    view_only: bool = True,
    page: str = NOVNC_PAGE,
    screen: str | None = None,
) -> ViewerUrl:
    """A URL that shows ``computer``'s screen live in a browser (noVNC).

    The token is fetched now (``orgo.computers.vnc_password``), so the URL holds
    the current one. ``view_only`` (the default) asks the viewer not to send
    mouse or keyboard input; it is the viewer's setting, not a permission: the
    token in the URL allows input to whoever edits the URL.

    The result is a credential: its ``repr`` hides the token, and nothing here
    logs it. Do not log ``str(result)`` either.

    Args:
        computer: The computer, or its id (then it is read from the API first).
        view_only: Open the viewer without input.
        page: A noVNC ``vnc.html`` (http or https; for example one you serve yourself).
        screen: One of the computer's added screens to show (``&screen=`` on the
            socket); ``None``: the default one.

    Raises:
        ValueError: ``page`` is not an http(s) URL without a fragment, or the
            computer has no ``connection_url``.
        NotFoundError: no such computer.
    """
    if not isinstance(view_only, bool):
        raise ValueError(f"view_only must be True or False; got {view_only!r}")
    target = urlsplit(page) if isinstance(page, str) else None
    if target is None or target.scheme not in ("http", "https") or not target.netloc:
        raise ValueError(f"page must be an http or https URL of a noVNC page; got {page!r}")
    if target.fragment:
        raise ValueError("page must not have a fragment: the viewer's settings go there")
    optional(check_id)("screen", screen)
    if not isinstance(computer, Computer) or not computer.connection_url:
        computer = await orgo.computers.get(computer)
    if not computer.connection_url:
        raise ValueError(f"computer {computer.id} has no connection_url to view it through")
    base = urlsplit(computer.connection_url.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.hostname:
        raise ValueError(f"computer {computer.id} has a connection_url that is not http(s)")
    credentials = await orgo.computers.vnc_password(computer)
    secure = base.scheme == "https"
    socket_path = f"{base.path.lstrip('/')}/ws/websockify".lstrip("/")
    settings = {
        "host": base.hostname,
        "port": str(base.port or (443 if secure else 80)),
        "encrypt": "1" if secure else "0",
        "path": f"{socket_path}?token={quote(credentials.password, safe='')}"
        + ("" if screen is None else f"&screen={quote(screen, safe='')}"),
        "password": credentials.password,
        "autoconnect": "1",
        "view_only": "1" if view_only else "0",
        "shared": "1",
        "resize": "scale",
        "reconnect": "1",
    }
    url = urlunsplit(target._replace(fragment=urlencode(settings, quote_via=quote)))
    websocket = urlunsplit(("wss" if secure else "ws", base.netloc, f"/{socket_path}", "", ""))
    return ViewerUrl(url, computer_id=computer.id, view_only=view_only, websocket_url=websocket)
