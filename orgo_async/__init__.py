"""orgo_async: an asyncio-first SDK for Orgo's cloud computers.

Everything public is importable from here and listed in ``__all__``.

The names are loaded on first use (PEP 562): ``import orgo_async`` costs
almost nothing, and ``orgo_async.Orgo`` (or ``from orgo_async import Orgo``)
imports the module that defines it then. Type checkers and IDEs see the
imports under ``TYPE_CHECKING`` below.
"""

import importlib as _importlib
import sys as _sys
from typing import TYPE_CHECKING, Any as _Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._client import Orgo
    from ._config import DEFAULT_BASE_URL, RetryPolicy, Timeouts
    from .agents.replay import render_replay
    from .agents.trajectory import Trajectory, TrajectoryError, TrajectoryRecorder, load_trajectory
    from .chat_models import (
        CHAT_MODELS,
        ChatChoice,
        ChatChunkChoice,
        ChatCompletion,
        ChatCompletionChunk,
        ChatDelta,
        ChatMessage,
        ChatThread,
        ChatUsage,
        OrgoRunInfo,
    )
    from .connect import AudioStream, Connection, EventStream, ReconnectPolicy, Terminal, Vnc
    from .connect.viewer import ViewerUrl, viewer_url
    from .errors import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        CapacityError,
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
        TemplateBuildError,
        TemplateBuildTimeout,
        TemplateValidationError,
    )
    from .fanout import Outcome
    from .fleet import AdaptiveLimiter, Fleet, FleetFailure, FleetOptions, FleetResult
    from .health import BootModel, ProbeBudget, ReadyInfo, RttEstimator
    from .models import (
        AutoStop,
        BashResult,
        ComputeLimits,
        Computer,
        ComputerFields,
        ComputerSpec,
        ComputerStatus,
        EventTypeInfo,
        ExecResult,
        ExportedFile,
        FileInfo,
        LaunchedComputer,
        LaunchTiming,
        ResizeDimension,
        ResizeResult,
        ResumeResult,
        Screen,
        Screenshot,
        StreamInfo,
        VncCredentials,
        Workspace,
    )
    from .pool import MAX_POOL_SIZE, Pool, PoolStats
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
    from .resources.chat import ChatCompletionStream
    from .resources.desktop import Desktop
    from .resources.files import MAX_UPLOAD_BYTES
    from .resources.templates import Templates
    from .template_models import (
        BuildEvent,
        BuildStatus,
        PublishedTemplate,
        Template,
        TemplateRef,
        TemplateVersion,
        TestRun,
        ValidationError,
        ValidationResult,
    )

__all__ = [
    "CHAT_MODELS",
    "DEFAULT_BASE_URL",
    "MAX_POOL_SIZE",
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
    "BuildEvent",
    "BuildStatus",
    "CapacityError",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionStream",
    "ChatDelta",
    "ChatMessage",
    "ChatThread",
    "ChatUsage",
    "ClientClosedError",
    "Clipboard",
    "CommandResult",
    "CommandTimeout",
    "ComputeLimits",
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
    "EventTypeInfo",
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
    "OrgoRunInfo",
    "Outcome",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Pool",
    "PoolStats",
    "ProbeBudget",
    "ProcessStart",
    "ProcessStop",
    "ProtocolError",
    "PublishedTemplate",
    "RateLimitError",
    "ReadyInfo",
    "ReadyTimeout",
    "ReconnectPolicy",
    "ResizeDimension",
    "ResizeResult",
    "ResponseValidationError",
    "ResumeResult",
    "RetryPolicy",
    "RttEstimator",
    "Screen",
    "ScreenChange",
    "Screenshot",
    "ServerError",
    "StreamInfo",
    "Template",
    "TemplateBuildError",
    "TemplateBuildTimeout",
    "TemplateRef",
    "TemplateValidationError",
    "TemplateVersion",
    "Templates",
    "Terminal",
    "TestRun",
    "Timeouts",
    "Trajectory",
    "TrajectoryError",
    "TrajectoryRecorder",
    "ValidationError",
    "ValidationResult",
    "ViewerUrl",
    "Vnc",
    "VncCredentials",
    "WindowClose",
    "WindowFocus",
    "WindowOpen",
    "Workspace",
    "load_trajectory",
    "render_replay",
    "viewer_url",
]

# Where each public name is defined: the same imports as under TYPE_CHECKING above.
_MODULE_OF: dict[str, str] = {
    "CHAT_MODELS": ".chat_models",
    "ChatChoice": ".chat_models",
    "ChatChunkChoice": ".chat_models",
    "ChatCompletion": ".chat_models",
    "ChatCompletionChunk": ".chat_models",
    "ChatDelta": ".chat_models",
    "ChatMessage": ".chat_models",
    "ChatThread": ".chat_models",
    "ChatUsage": ".chat_models",
    "OrgoRunInfo": ".chat_models",
    "ChatCompletionStream": ".resources.chat",
    "DEFAULT_BASE_URL": "._config",
    "MAX_POOL_SIZE": ".pool",
    "MAX_UPLOAD_BYTES": ".resources.files",
    "APIConnectionError": ".errors",
    "APIError": ".errors",
    "APITimeoutError": ".errors",
    "Active": ".protocol.events",
    "AdaptiveLimiter": ".fleet",
    "AudioChunk": ".protocol.audio",
    "AudioStarted": ".protocol.audio",
    "AudioStream": ".connect",
    "AudioStreamStart": ".protocol.events",
    "AudioStreamStop": ".protocol.events",
    "AuthenticationError": ".errors",
    "AutoStop": ".models",
    "BashResult": ".models",
    "BootModel": ".health",
    "CapacityError": ".errors",
    "ClientClosedError": ".errors",
    "Clipboard": ".protocol.events",
    "CommandResult": ".protocol.terminal",
    "CommandTimeout": ".errors",
    "ComputeLimits": ".models",
    "Computer": ".models",
    "ComputerFailedError": ".errors",
    "ComputerFields": ".models",
    "ComputerSpec": ".models",
    "ComputerStatus": ".models",
    "ConflictError": ".errors",
    "Connection": ".connect",
    "ConnectionClosedError": ".errors",
    "ConnectorError": ".errors",
    "ConnectorProtocolError": ".errors",
    "CreateOutcomeUnknown": ".errors",
    "Desktop": ".resources.desktop",
    "DesktopEvent": ".protocol.events",
    "EventStream": ".connect",
    "EventTypeInfo": ".models",
    "ExecResult": ".models",
    "ExportedFile": ".models",
    "FileChange": ".protocol.events",
    "FileInfo": ".models",
    "Fleet": ".fleet",
    "FleetError": ".errors",
    "FleetFailure": ".fleet",
    "FleetOptions": ".fleet",
    "FleetResult": ".fleet",
    "GenericEvent": ".protocol.events",
    "HandshakeError": ".errors",
    "Idle": ".protocol.events",
    "InvalidRequestError": ".errors",
    "LaunchTiming": ".models",
    "LaunchedComputer": ".models",
    "MethodNotAllowedError": ".errors",
    "MissingAPIKeyError": ".errors",
    "NotFoundError": ".errors",
    "Orgo": "._client",
    "OrgoError": ".errors",
    "Outcome": ".fanout",
    "PaymentRequiredError": ".errors",
    "PermissionDeniedError": ".errors",
    "Pool": ".pool",
    "PoolStats": ".pool",
    "ProbeBudget": ".health",
    "ProcessStart": ".protocol.events",
    "ProcessStop": ".protocol.events",
    "ProtocolError": ".errors",
    "RateLimitError": ".errors",
    "ReadyInfo": ".health",
    "ReadyTimeout": ".errors",
    "ReconnectPolicy": ".connect",
    "ResizeDimension": ".models",
    "ResizeResult": ".models",
    "ResponseValidationError": ".errors",
    "ResumeResult": ".models",
    "RetryPolicy": "._config",
    "RttEstimator": ".health",
    "Screen": ".models",
    "ScreenChange": ".protocol.events",
    "Screenshot": ".models",
    "ServerError": ".errors",
    "StreamInfo": ".models",
    "Terminal": ".connect",
    "Timeouts": "._config",
    "Vnc": ".connect",
    "VncCredentials": ".models",
    "WindowClose": ".protocol.events",
    "WindowFocus": ".protocol.events",
    "WindowOpen": ".protocol.events",
    "Workspace": ".models",
    "BuildEvent": ".template_models",
    "BuildStatus": ".template_models",
    "PublishedTemplate": ".template_models",
    "Template": ".template_models",
    "TemplateRef": ".template_models",
    "TemplateVersion": ".template_models",
    "TestRun": ".template_models",
    "ValidationError": ".template_models",
    "ValidationResult": ".template_models",
    "TemplateBuildError": ".errors",
    "TemplateBuildTimeout": ".errors",
    "TemplateValidationError": ".errors",
    "Templates": ".resources.templates",
    "Trajectory": ".agents.trajectory",
    "TrajectoryError": ".agents.trajectory",
    "TrajectoryRecorder": ".agents.trajectory",
    "load_trajectory": ".agents.trajectory",
    "render_replay": ".agents.replay",
    "ViewerUrl": ".connect.viewer",
    "viewer_url": ".connect.viewer",
}


def __getattr__(name: str) -> _Any:
    """Import the module of a public name on first use, and publish its public names."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _publish(module)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])


def _publish(module_name: str) -> None:
    """Bind the public names of one submodule here, as the package's own.

    Public classes report the package as their module (as httpx does). Their
    string annotations are resolved first, through the modules that define
    them and their bases (the package's own name would not find them).
    """
    import attrs  # here, not at the top: a bare `import orgo_async` stays cheap

    module = _importlib.import_module(module_name, __name__)
    for name, where in _MODULE_OF.items():
        if where != module_name:
            continue
        obj = getattr(module, name)
        if isinstance(obj, type):
            if attrs.has(obj):
                attrs.resolve_types(obj, globalns=_defining_namespace(obj))
            obj.__module__ = __name__
        globals()[name] = obj


def _defining_namespace(cls: type) -> dict[str, _Any]:
    """The globals of the modules that define ``cls`` and its bases, base first.

    A base published earlier already reports the package as its module; its
    defining module is then the one the table names.
    """
    namespace: dict[str, _Any] = {}
    for base in reversed(cls.__mro__):
        module = base.__module__
        if module == __name__:
            module = __name__ + _MODULE_OF[base.__name__]
        namespace.update(vars(_sys.modules[module]))
    return namespace
