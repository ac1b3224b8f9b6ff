"""The exceptions raised by orgo_async.

Every exception the SDK raises on purpose derives from :class:`OrgoError`.
Exceptions of the libraries underneath (aiohttp, websockets, cattrs) never
escape: they are mapped to one of these and chained with ``from``.
Bad arguments are the exception: they raise :class:`ValueError` naming the
field, before any request is sent.

::

    OrgoError
    ├── MissingAPIKeyError                 no api_key= and no ORGO_API_KEY
    ├── ClientClosedError                  the session was used after close()
    ├── APIError                           the API answered with an error status
    │   ├── InvalidRequestError            400, 422
    │   ├── AuthenticationError            401
    │   ├── PaymentRequiredError           402
    │   ├── PermissionDeniedError          403
    │   ├── NotFoundError                  404
    │   ├── MethodNotAllowedError          405
    │   ├── ConflictError                  409
    │   ├── RateLimitError                 429
    │   └── ServerError                    5xx
    ├── APIConnectionError                 no answer: refused, reset, dropped
    │   └── APITimeoutError                a timeout phase expired
    ├── ResponseValidationError            an answer that does not fit the model
    ├── CreateOutcomeUnknown               a create whose result cannot be resolved
    ├── ComputerFailedError                a computer reached error/stopped/deleting
    ├── ReadyTimeout                       the health race lost against its deadline
    ├── FleetError (also an ExceptionGroup) per-computer failures of a fleet launch
    ├── TemplateBuildError                 a template build failed or never started
    │   └── TemplateBuildTimeout           ... or was still building at the deadline
    ├── ProtocolError                      bytes or frames a protocol does not allow
    │                                      (the sans-I/O cores, the PNG decoder)
    └── ConnectorError                     a computer's WebSocket failed
        ├── HandshakeError                 the server refused the WebSocket (status, auth)
        ├── ConnectionClosedError          the socket closed (code, reason)
        ├── ConnectorProtocolError         the socket's peer broke the protocol
        │                                  (also a ProtocolError)
        └── CommandTimeout                 a terminal command ran out of time

A malformed template document is bad input too: :class:`TemplateValidationError`
is a ``ValueError`` (not an ``OrgoError``) carrying every problem found.

Every error carries data (status, code, request_id, ...) as attributes, not
only in its message. No error message ever contains the API key or a
``vnc_password``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "CapacityError",
    "ClientClosedError",
    "CommandTimeout",
    "ComputerFailedError",
    "ConflictError",
    "ConnectionClosedError",
    "ConnectorError",
    "ConnectorProtocolError",
    "CreateOutcomeUnknown",
    "FleetError",
    "HandshakeError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OrgoError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "ReadyTimeout",
    "ResponseValidationError",
    "ServerError",
    "TemplateBuildError",
    "TemplateBuildTimeout",
    "TemplateValidationError",
]


class OrgoError(Exception):
    """Base class of every error raised by orgo_async."""


class MissingAPIKeyError(OrgoError):
    """No API key was given and ``ORGO_API_KEY`` is not set."""


class ClientClosedError(OrgoError, RuntimeError):
    """The :class:`~orgo_async.Orgo` session was used after it was closed."""


class APIError(OrgoError):
    """The API answered with an error status.

    Attributes:
        status: The HTTP status code.
        code: Orgo's machine-readable ``code`` (``"name_exists"``...), if any.
        message: Orgo's human-readable ``error`` text, or a description of the status.
        request_id: Orgo's ``request_id`` (body) or ``X-Request-Id`` (header), if any.
        upstream_status: The desktop's own status for proxied failures, if any.
        retry_after: Seconds the server asked us to wait (``Retry-After`` or ``retry_after``).
        retryable: Whether repeating the same request can help.
        method: The HTTP method of the request.
        path: The path of the request (never the query string).
        body: The decoded JSON body (or ``None``).
    """

    def __init__(
        self,
        *,
        status: int,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        method: str = "",
        path: str = "",
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.retryable = retryable
        self.method = method
        self.path = path
        self.body = body
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path} -> " if self.method else ""
        text = f"{where}{self.status}"
        if self.code:
            text += f" {self.code}"
        text += f": {self.message}"
        if self.request_id:
            text += f" (request_id={self.request_id})"
        return text


class InvalidRequestError(APIError):
    """400 or 422: the API rejected the request body or arguments."""


class AuthenticationError(APIError):
    """401: the API key is missing, invalid or expired."""


class PaymentRequiredError(APIError):
    """402: out of credits or free hours."""


class PermissionDeniedError(APIError):
    """403: no access, a plan limit, or a workspace-scoped key used elsewhere."""


class NotFoundError(APIError):
    """404: no such workspace, computer or route."""


class MethodNotAllowedError(APIError):
    """405: the route exists but not for this method (legacy hosts answer this to restart)."""


class ConflictError(APIError):
    """409: a state conflict (a duplicate name, a computer not running, waking...)."""


class RateLimitError(APIError):
    """429: too many requests; see :attr:`retry_after`."""


class ServerError(APIError):
    """5xx: Orgo or the desktop behind it failed."""


class APIConnectionError(OrgoError):
    """The request got no answer: the connection was refused, reset or dropped.

    Attributes:
        method: The HTTP method of the request.
        path: The path of the request (never the query string).
        sent: ``False`` when the request certainly never reached the server (so
            repeating it is always safe), ``True`` when it may have.
        retryable: ``False`` when no repetition can help (the server's TLS
            certificate is not trusted, say).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        sent: bool = True,
        retryable: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.sent = sent
        self.retryable = retryable
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{message}")


class APITimeoutError(APIConnectionError):
    """A timeout expired; :attr:`phase` names which (``connect``, ``read``, ``total``...).

    Attributes:
        phase: The timeout phase that expired.
        seconds: Its configured length.
    """

    def __init__(
        self,
        *,
        phase: str,
        seconds: float | None,
        method: str = "",
        path: str = "",
        sent: bool = True,
    ) -> None:
        self.phase = phase
        self.seconds = seconds
        length = f" ({seconds:g} s)" if seconds is not None else ""
        super().__init__(f"timed out during {phase}{length}", method=method, path=path, sent=sent)


class ResponseValidationError(OrgoError):
    """The API answered 2xx with a body that does not fit the expected model.

    Attributes:
        model: The name of the model that was being built.
        problems: One line per problem, with the path inside the body.
    """

    def __init__(self, model: str, problems: Sequence[str]) -> None:
        self.model = model
        self.problems = list(problems)
        detail = "; ".join(self.problems) or "unexpected shape"
        super().__init__(f"unexpected {model} in the response: {detail}")


class CreateOutcomeUnknown(OrgoError):
    """A create's response was lost and the computer could not be looked up.

    The computer may or may not exist. Look for it by :attr:`name` in
    :attr:`workspace_id` later (names are unique within a workspace).
    """

    def __init__(self, *, name: str, workspace_id: str, reason: str) -> None:
        self.name = name
        self.workspace_id = workspace_id
        super().__init__(
            f"create of computer {name!r} in workspace {workspace_id}: outcome unknown ({reason})"
        )


class ComputerFailedError(OrgoError):
    """A computer reached a status from which it will not become ready on its own.

    Attributes:
        computer_id: The computer's id.
        status: The status observed (``error``, ``stopped``, ``deleting``...).
    """

    def __init__(self, *, computer_id: str, status: str) -> None:
        self.computer_id = computer_id
        self.status = status
        super().__init__(f"computer {computer_id} is {status}; it will not become ready")


class ReadyTimeout(OrgoError, TimeoutError):
    """The deadline passed before the computer's health probe answered 200.

    Attributes:
        computer_id: The computer's id.
        last_status: The last health status seen (an HTTP status or the error text), if any.
        probes: How many health probes were sent.
        elapsed: Seconds spent waiting.
    """

    def __init__(
        self, *, computer_id: str, last_status: str | None, probes: int, elapsed: float
    ) -> None:
        self.computer_id = computer_id
        self.last_status = last_status
        self.probes = probes
        self.elapsed = elapsed
        super().__init__(
            f"computer {computer_id} not ready after {elapsed:.3f} s "
            f"({probes} health probes, last answer: {last_status or 'none'})"
        )


class FleetError(ExceptionGroup[Exception], OrgoError):
    """Some computers of a fleet failed to launch; one sub-exception per failure.

    Attributes:
        ready: How many computers of the fleet became ready.
    """

    ready: int

    def __new__(
        cls, message: str, exceptions: Sequence[Exception], *, ready: int = 0
    ) -> FleetError:
        self = super().__new__(cls, message, exceptions)
        self.ready = ready
        return self

    def __init__(self, message: str, exceptions: Sequence[Exception], *, ready: int = 0) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> FleetError:  # type: ignore[override]
        return FleetError(self.message, excs, ready=self.ready)


class CapacityError(OrgoError):
    """A launch asks for more computers than the account's compute limits leave free.

    Raised before any computer is created.

    Attributes:
        requested: Computers the launch wanted.
        free: Computers that could still be created.
        max_computers: The plan's limit.
        computers_used: Computers that exist now.
    """

    def __init__(
        self, *, requested: int, free: int, max_computers: int | None, computers_used: int | None
    ) -> None:
        self.requested = requested
        self.free = free
        self.max_computers = max_computers
        self.computers_used = computers_used
        limit = "" if max_computers is None else f"the plan allows {max_computers} computers, "
        used = "" if computers_used is None else f"{computers_used} exist, "
        super().__init__(
            f"not enough capacity for {requested} computers: {limit}{used}{free} free"
            " (pass check_capacity=False to launch anyway)"
        )


class ProtocolError(OrgoError):
    """Input that a protocol does not allow (or too much of it).

    Raised by the sans-I/O protocol cores (``orgo_async.protocol``) and the PNG
    decoder; on a live socket the connectors raise it as
    :class:`ConnectorProtocolError`.
    """


class ConnectorError(OrgoError):
    """A computer's WebSocket (terminal, audio, events, VNC) failed."""


class HandshakeError(ConnectorError):
    """The server refused to open the WebSocket.

    Attributes:
        status: The HTTP status of the refused upgrade (401 for a bad token), if any.
        socket: Which socket (``terminal``, ``audio``, ``events``, ``websockify``).
    """

    def __init__(self, message: str, *, socket: str, status: int | None = None) -> None:
        self.status = status
        self.socket = socket
        super().__init__(f"{socket}: {message}")


class ConnectionClosedError(ConnectorError):
    """The WebSocket closed, and it was not (or could no longer be) reopened.

    Attributes:
        code: The close code (4401 bad token, 4404 not running, 1001 stopping...), if any.
        reason: The close reason sent by the server.
        socket: Which socket.
    """

    def __init__(
        self, message: str, *, socket: str, code: int | None = None, reason: str = ""
    ) -> None:
        self.code = code
        self.reason = reason
        self.socket = socket
        detail = f" (code {code}{': ' + reason if reason else ''})" if code is not None else ""
        super().__init__(f"{socket}: {message}{detail}")


class ConnectorProtocolError(ConnectorError, ProtocolError):
    """The peer of a computer's WebSocket broke the protocol (or sent too much).

    Raised by the connectors from the protocol core's :class:`ProtocolError`
    (chained as ``__cause__``), so ``except ConnectorError`` catches every
    failure of a socket and ``except ProtocolError`` every malformed input.

    Attributes:
        socket: Which socket.
    """

    def __init__(self, message: str, *, socket: str) -> None:
        self.socket = socket
        super().__init__(f"{socket}: {message}")


class CommandTimeout(ConnectorError, TimeoutError):
    """A command run on a terminal did not finish in time (it was interrupted).

    Attributes:
        command: The command.
        seconds: The timeout.
        output: What it printed before the timeout.
    """

    def __init__(self, *, command: str, seconds: float | None, output: str) -> None:
        self.command = command
        self.seconds = seconds
        self.output = output
        super().__init__(f"command did not finish within {seconds} s")


# Status families; see _error_class_for().
_STATUS_CLASSES: Mapping[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def _error_class_for(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP status (the one place that mapping lives)."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIError)


class TemplateBuildError(OrgoError):
    """A template build did not reach ``ready``: it failed, was cancelled, or never started.

    Attributes:
        ref: The template version (``namespace/name@version``).
        status: The build status last seen (``failed``, ``not_built``, ``building``...).
        error: The server's reason, if it gave one.
    """

    def __init__(self, *, ref: str, status: str, error: str | None, message: str) -> None:
        self.ref = ref
        self.status = status
        self.error = error
        super().__init__(message)


class TemplateBuildTimeout(TemplateBuildError, TimeoutError):
    """The deadline passed while the template was still building."""


class TemplateValidationError(ValueError):
    """A template document breaks the schema the server publishes, found before any request.

    The message names the first problem's field path (and how many more there are).

    Attributes:
        problems: Every problem, each a mapping ``{field, code, message, hint}``
            (the shape of the server's ``errors``).
    """

    def __init__(self, problems: Sequence[Mapping[str, Any]]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0] if self.problems else {}
        more = len(self.problems) - 1
        message = f"template document: {first.get('message') or first.get('field', '?')}"
        if more > 0:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(message)
