"""The aiohttp transport: one ClientSession, per-phase timeouts, and exception mapping.

Nothing from aiohttp crosses this module's boundary: its exceptions become
:class:`~orgo_async.APIConnectionError` / :class:`~orgo_async.APITimeoutError`,
chained with ``from``.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl as ssl_module
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._config import Timeouts
from ._retry import error_fields, is_retryable_status, parse_retry_after
from .errors import APIConnectionError, APIError, APITimeoutError, _error_class_for

log = logging.getLogger("orgo_async.http")


@attrs.frozen
class Response:
    """One HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    method: str
    path: str

    def json(self) -> Any:
        if not self.content:
            return None
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("X-Request-Id")


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def status_error(response: Response) -> APIError:
    """The APIError for an error answer, built from its status and Orgo's error body."""
    body = response.json()
    fields = error_fields(body)
    message = fields.get("error") or fields.get("message")
    code = fields.get("code")
    request_id = fields.get("request_id") or response.request_id
    upstream = fields.get("upstream_status")
    retry_after = parse_retry_after(response.headers.get("Retry-After"), fields.get("retry_after"))
    code_str = code if isinstance(code, str) else None
    cls = _error_class_for(response.status)
    return cls(
        status=response.status,
        message=str(message) if message else _reason(response.status),
        code=code_str,
        request_id=str(request_id) if request_id else None,
        upstream_status=upstream if isinstance(upstream, int) else None,
        retry_after=retry_after,
        retryable=is_retryable_status(response.status, code_str, response.method),
        method=response.method,
        path=response.path,
        body=body,
    )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class HttpTransport:
    """Sends requests to one origin with the API key, through one pooled ClientSession.

    The session is opened lazily inside the running event loop and closed by
    :meth:`close`. The ``Authorization`` header is attached per request, and only
    to URLs of the configured origin; redirects are never followed (a redirect
    to another host would drop or leak the key), they become an error instead.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        max_connections: int,
        user_agent: str,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.ssl = ssl
        """The TLS context for HTTPS (``None``: the system's trust store)."""
        self.base_url = base_url.rstrip("/")
        self.origin = origin_of(self.base_url)
        self._base_path = urlsplit(self.base_url).path
        self._auth = f"Bearer {api_key}"
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={self.base_url!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=True if self.ssl is None else self.ssl,
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
                auto_decompress=True,
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``/computers/x``) or of an absolute same-origin URL."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + path

    def is_same_origin(self, url: str) -> bool:
        return origin_of(url) == self.origin

    def prepare(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[str, str, dict[str, str]]:
        """``(absolute URL, its path for logs and errors, the headers to send)``.

        The key goes only to the configured origin; ``headers`` are added (a
        caller's own secret headers never reach another origin either).
        """
        url, shown, same_origin = self._target(path)
        sent = {"Authorization": self._auth} if same_origin else {}
        if headers and same_origin:
            sent.update(headers)
        return url, shown, sent

    def _target(self, path: str) -> tuple[str, str, bool]:
        """``(absolute URL, its path for logs and errors, whether the key may go there)``."""
        if path.startswith("/"):  # an API path: our origin, no parsing needed
            url = self.base_url + path
            return url, self._base_path + path, True
        url = self.url(path)
        return url, urlsplit(url).path, self.is_same_origin(url)

    async def send(
        self,
        method: str,
        path: str,
        *,
        timeouts: Timeouts,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        data: aiohttp.FormData | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One attempt: send the request and read the whole answer.

        Raises:
            APIConnectionError: no answer (``sent`` says whether it may have arrived).
            APITimeoutError: a phase expired.
        """
        url, shown, sent = self.prepare(path, headers)
        body: bytes | aiohttp.FormData | None = data
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            sent["Content-Type"] = "application/json"
        timeout = _client_timeout(timeouts)
        started = time.perf_counter()
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                params=params,
                headers=sent,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                content = await resp.read()
                response = Response(
                    status=resp.status,
                    headers=resp.headers,
                    content=content,
                    method=method,
                    path=shown,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise mapped_error(exc, method, shown, timeouts) from exc
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms (request_id=%s)",
                method,
                shown,
                response.status,
                (time.perf_counter() - started) * 1000,
                response.request_id,
            )
        if 300 <= response.status < 400:
            raise _redirect_error(response)
        return response


@functools.lru_cache(maxsize=256)
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for ours, without the timers that could never fire first.

    A phase as long as the whole request (a health probe's, say) adds a timer
    per request, and one more per chunk read, that the request timer always
    beats: leave it out.
    """
    total = timeouts.request

    def needed(phase: float | None) -> float | None:
        return None if total is not None and phase is not None and phase >= total else phase

    return aiohttp.ClientTimeout(
        total=total, sock_connect=needed(timeouts.connect), sock_read=needed(timeouts.read)
    )


def _redirect_error(response: Response) -> APIError:
    target = response.headers.get("Location", "")
    parts = urlsplit(target)
    where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "another URL"
    return APIError(
        status=response.status,
        message=(
            f"redirected to {where}; redirects are not followed so the API key never "
            f"travels to another host: set base_url to the final origin "
            f"(https://www.orgo.ai/api, with www)"
        ),
        method=response.method,
        path=response.path,
    )


def tls_failure(name: str, method: str, path: str) -> APIConnectionError:
    """The error of a failed TLS handshake (``name``: the exception's class name)."""
    # The same certificate meets every attempt: no repetition can help.
    return APIConnectionError(
        f"TLS failed ({name}): is the server's certificate trusted? "
        "(Orgo(ssl=...) takes a context that trusts a private CA)",
        method=method,
        path=path,
        sent=False,
        retryable=False,
    )


def mapped_error(exc: Exception, method: str, path: str, timeouts: Timeouts) -> APIConnectionError:
    """Our error for one of aiohttp's (or the socket's), most specific first.

    A function, not a context manager: it runs only when a request failed, and
    costs the requests that succeed nothing.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError(
            phase="connect", seconds=timeouts.connect, method=method, path=path, sent=False
        )
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return APITimeoutError(phase="read", seconds=timeouts.read, method=method, path=path)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(phase="request", seconds=timeouts.request, method=method, path=path)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # A TLS failure (a subclass) meets the same certificate at every attempt.
        if isinstance(exc, aiohttp.ClientSSLError):
            return tls_failure(type(exc).__name__, method, path)
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return APIConnectionError(
            f"could not connect ({reason})", method=method, path=path, sent=False
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIConnectionError(
            "the server closed the connection without an answer", method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientError):
        return APIConnectionError(
            f"connection failed ({type(exc).__name__})", method=method, path=path
        )
    strerror = exc.strerror if isinstance(exc, OSError) else None
    return APIConnectionError(
        f"connection failed ({strerror or type(exc).__name__})", method=method, path=path
    )
