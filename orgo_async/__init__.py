"""orgo_async: an asyncio-first SDK for Orgo's cloud computers.

Everything public is importable from here and listed in ``__all__``.
"""

import attrs as _attrs

from ._client import Orgo
from ._config import DEFAULT_BASE_URL, RetryPolicy, Timeouts
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    ComputerFailedError,
    ConflictError,
    CreateOutcomeUnknown,
    FleetError,
    InvalidRequestError,
    MethodNotAllowedError,
    MissingAPIKeyError,
    NotFoundError,
    OrgoError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ReadyTimeout,
    ResponseValidationError,
    ServerError,
)
from .fleet import AdaptiveLimiter, Fleet, FleetFailure, FleetResult
from .health import BootModel, ReadyInfo
from .models import (
    AutoStop,
    Computer,
    ComputerSpec,
    ComputerStatus,
    LaunchedComputer,
    LaunchTiming,
    ResizeDimension,
    ResizeResult,
    VncCredentials,
    Workspace,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AdaptiveLimiter",
    "AuthenticationError",
    "AutoStop",
    "BootModel",
    "ClientClosedError",
    "Computer",
    "ComputerFailedError",
    "ComputerSpec",
    "ComputerStatus",
    "ConflictError",
    "CreateOutcomeUnknown",
    "Fleet",
    "FleetError",
    "FleetFailure",
    "FleetResult",
    "InvalidRequestError",
    "LaunchTiming",
    "LaunchedComputer",
    "MethodNotAllowedError",
    "MissingAPIKeyError",
    "NotFoundError",
    "Orgo",
    "OrgoError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyInfo",
    "ReadyTimeout",
    "ResizeDimension",
    "ResizeResult",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerError",
    "Timeouts",
    "VncCredentials",
    "Workspace",
]

# Public classes report the package as their module (as httpx does). Their string
# annotations are resolved first, while their defining module is still known.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        if _attrs.has(_obj):
            _attrs.resolve_types(_obj)
        _obj.__module__ = "orgo_async"
del _name, _obj

__version__ = "0.1.0"
