"""orgo_async: an asyncio-first SDK for Orgo's cloud computers.

Everything public is importable from here and listed in ``__all__``.
"""

import attrs as _attrs

from ._client import Orgo
from ._config import DEFAULT_BASE_URL, RetryPolicy, Timeouts
from ._version import __version__ as __version__
from .connect import AudioStream, Connection, EventStream, ReconnectPolicy, Terminal, Vnc
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    CommandTimeout,
    ComputerFailedError,
    ConflictError,
    ConnectionClosedError,
    ConnectorError,
    ConnectorProtocolError,
    CreateOutcomeUnknown,
    FleetError,
    HandshakeError,
    InvalidRequestError,
    MethodNotAllowedError,
    MissingAPIKeyError,
    NotFoundError,
    OrgoError,
    PaymentRequiredError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ReadyTimeout,
    ResponseValidationError,
    ServerError,
)
from .fanout import Outcome
from .fleet import AdaptiveLimiter, Fleet, FleetFailure, FleetOptions, FleetResult
from .health import BootModel, ProbeBudget, ReadyInfo, RttEstimator
from .models import (
    AutoStop,
    BashResult,
    Computer,
    ComputerFields,
    ComputerSpec,
    ComputerStatus,
    ExecResult,
    ExportedFile,
    FileInfo,
    LaunchedComputer,
    LaunchTiming,
    ResizeDimension,
    ResizeResult,
    Screenshot,
    VncCredentials,
    Workspace,
)
from .protocol.audio import AudioChunk, AudioStarted
from .protocol.events import (
    Active,
    AudioStreamStart,
    AudioStreamStop,
    Clipboard,
    DesktopEvent,
    FileChange,
    GenericEvent,
    Idle,
    ProcessStart,
    ProcessStop,
    ScreenChange,
    WindowClose,
    WindowFocus,
    WindowOpen,
)
from .protocol.terminal import CommandResult
from .resources.desktop import Desktop
from .resources.files import MAX_UPLOAD_BYTES

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_UPLOAD_BYTES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "Active",
    "AdaptiveLimiter",
    "AudioChunk",
    "AudioStarted",
    "AudioStream",
    "AudioStreamStart",
    "AudioStreamStop",
    "AuthenticationError",
    "AutoStop",
    "BashResult",
    "BootModel",
    "ClientClosedError",
    "Clipboard",
    "CommandResult",
    "CommandTimeout",
    "Computer",
    "ComputerFailedError",
    "ComputerFields",
    "ComputerSpec",
    "ComputerStatus",
    "ConflictError",
    "Connection",
    "ConnectionClosedError",
    "ConnectorError",
    "ConnectorProtocolError",
    "CreateOutcomeUnknown",
    "Desktop",
    "DesktopEvent",
    "EventStream",
    "ExecResult",
    "ExportedFile",
    "FileChange",
    "FileInfo",
    "Fleet",
    "FleetError",
    "FleetFailure",
    "FleetOptions",
    "FleetResult",
    "GenericEvent",
    "HandshakeError",
    "Idle",
    "InvalidRequestError",
    "LaunchTiming",
    "LaunchedComputer",
    "MethodNotAllowedError",
    "MissingAPIKeyError",
    "NotFoundError",
    "Orgo",
    "OrgoError",
    "Outcome",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "ProbeBudget",
    "ProcessStart",
    "ProcessStop",
    "ProtocolError",
    "RateLimitError",
    "ReadyInfo",
    "ReadyTimeout",
    "ReconnectPolicy",
    "ResizeDimension",
    "ResizeResult",
    "ResponseValidationError",
    "RetryPolicy",
    "RttEstimator",
    "ScreenChange",
    "Screenshot",
    "ServerError",
    "Terminal",
    "Timeouts",
    "Vnc",
    "VncCredentials",
    "WindowClose",
    "WindowFocus",
    "WindowOpen",
    "Workspace",
]

# Public classes report the package as their module (as httpx does). Their string
# annotations are resolved first, while their defining module is still known.
# Two passes: a subclass's annotations are resolved through its bases' modules.
_public = [globals()[_name] for _name in __all__]
for _obj in _public:
    if isinstance(_obj, type) and _attrs.has(_obj):
        _attrs.resolve_types(_obj)
for _obj in _public:
    if isinstance(_obj, type):
        _obj.__module__ = "orgo_async"
del _obj, _public
