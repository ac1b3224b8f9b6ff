"""Server-Sent Events over the session's transport: one request, its events read as they come.

:class:`SSEDecoder` is the sans-I/O part (lines in, ``data`` payloads out);
:func:`open_events` sends the request and, on a 2xx answer, returns an
:class:`EventSource` that yields each event's ``data`` until the server ends
the stream. An error status is read whole and raised as the session's
:class:`~orgo_async.APIError`; aiohttp's exceptions become
:class:`~orgo_async.APIConnectionError` as everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from ._config import Timeouts
from ._http import HttpTransport, Response, mapped_error, status_error
from .errors import APIConnectionError

__all__ = ["EventSource", "SSEDecoder", "open_events"]

# The read buffer; aiohttp refuses a line longer than twice this.
_BUFFER = 2**20


class SSEDecoder:
    """Lines of an event stream in, the ``data`` of each complete event out.

    Follows the HTML spec's parsing: ``data:`` lines of one event are joined
    with newlines, a blank line dispatches it, ``id:`` sets
    :attr:`last_event_id` (kept across events, as the spec says), comments
    (``:``) and other fields (``event``, ``retry``) are skipped.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self.last_event_id: str | None = None
        """The last ``id:`` seen (what a reconnection sends as ``Last-Event-ID``)."""

    def feed(self, line: str) -> str | None:
        """One line (without its end); the event's data when the line completes one."""
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
        return None

    def end(self) -> str | None:
        """The last event, when the stream ended without its blank line."""
        return self.feed("")


class EventSource:
    """The events of one streamed answer (async-iterate it; close it when done)."""

    def __init__(
        self, response: aiohttp.ClientResponse, *, method: str, path: str, timeouts: Timeouts
    ) -> None:
        self._response = response
        self._timeouts = timeouts
        self._method = method
        self._path = path
        self.headers: Mapping[str, str] = response.headers
        """The answer's headers."""
        self._decoder = SSEDecoder()

    @property
    def last_event_id(self) -> str | None:
        """The ``id`` of the events read so far (None: the server sends none)."""
        return self._decoder.last_event_id

    async def close(self) -> None:
        """Release the connection (idempotent)."""
        self._response.close()

    async def __aiter__(self) -> AsyncIterator[str]:
        decoder = self._decoder
        content = self._response.content
        try:
            while True:
                raw = await content.readuntil(b"\n")
                if not raw:
                    break
                data = decoder.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if data is not None:
                    yield data
        except ValueError as exc:  # aiohttp's answer to a line over twice its buffer
            raise APIConnectionError(
                f"an event line is over {2 * _BUFFER} bytes", method=self._method, path=self._path
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, self._method, self._path, self._timeouts) from exc
        last = decoder.end()
        if last is not None:
            yield last


async def open_events(
    transport: HttpTransport,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None,
    timeouts: Timeouts,
) -> EventSource:
    """Send one request for an event stream; its events once it answered 2xx.

    ``json_body`` is sent as JSON unless it is None (a GET).

    Timeouts: ``connect``, and ``read`` between two pieces of the stream; no
    total (a stream lasts as long as its producer).

    Raises:
        APIError: an error status (the body read whole, mapped as any answer).
        APIConnectionError: no answer (``APITimeoutError`` naming the phase).
    """
    url, shown, sent = transport.prepare(path, headers)
    sent["Accept"] = "text/event-stream"
    body = None
    if json_body is not None:
        sent["Content-Type"] = "application/json"
        body = json.dumps(json_body, separators=(",", ":")).encode()
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    try:
        response = await transport.session.request(
            method,
            url,
            data=body,
            headers=sent,
            timeout=timeout,
            allow_redirects=False,
            read_bufsize=_BUFFER,
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise mapped_error(exc, method, shown, timeouts) from exc
    if response.status >= 300:
        try:
            content = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, method, shown, timeouts) from exc
        finally:
            response.release()
        raise status_error(
            Response(
                status=response.status,
                headers=response.headers,
                content=content,
                method=method,
                path=shown,
            )
        )
    return EventSource(response, method=method, path=shown, timeouts=timeouts)
