"""Configuration objects: per-phase timeouts, the retry policy, and the environment."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs

__all__ = ["DEFAULT_BASE_URL", "RetryPolicy", "Timeouts"]

DEFAULT_BASE_URL: Final = "https://www.orgo.ai/api"
API_KEY_ENV: Final = "ORGO_API_KEY"
BASE_URL_ENV: Final = "ORGO_BASE_URL"

# Orgo's "still there, not ready yet" codes (docs/orgo-api.md §1.2): retried like 429/503.
WAKE_CODES: Final = frozenset(
    {
        "computer_waking",
        "suspend_in_progress",
        "resume_in_progress",
        "resuming",
        "wake_failed",
        "no_capacity",
        "saved_state_unavailable",
    }
)


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"Timeouts.{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """Timeouts per phase, in seconds; ``None`` switches a phase off.

    Pass one to :class:`~orgo_async.Orgo` for the session's defaults, and
    ``timeout=`` to a call to override them for that call (a number there
    replaces :attr:`total`). :func:`attrs.evolve` or :meth:`replace` derive
    variants. A timeout raises :class:`~orgo_async.APITimeoutError` whose
    ``phase`` names the phase that expired.
    """

    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    """Opening one TCP/TLS connection."""
    read: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    """Waiting for the next bytes of an answer."""
    request: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    """One attempt of a request, from sending to the end of the answer."""
    total: float | None = attrs.field(default=120.0, validator=_positive_or_none)
    """One call, across all its retries and their waits."""
    probe: float | None = attrs.field(default=1.0, validator=_positive_or_none)
    """One health probe of the readiness race."""
    ws_open: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    """Opening a WebSocket, handshake included."""
    ws_close: float | None = attrs.field(default=5.0, validator=_positive_or_none)
    """Closing a WebSocket cleanly."""
    ping: float | None = attrs.field(default=20.0, validator=_positive_or_none)
    """Waiting for the answer to a keepalive ping."""

    def replace(self, **changes: float | None) -> Timeouts:
        """A copy with some phases changed."""
        return attrs.evolve(self, **changes)

    def resolve(self, override: Timeouts | float | None) -> Timeouts:
        """The timeouts of one call: a per-call override, else these."""
        if override is None:
            return self
        if isinstance(override, Timeouts):
            return override
        return self.replace(total=override)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not value > 0
    ):
        raise ValueError(
            f"RetryPolicy.{attribute.name} must be a positive number of seconds, got {value!r}"
        )


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"RetryPolicy.{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed request.

    Retried: 429, 503, Orgo's wake codes (409 ``computer_waking`` ...), other
    5xx and dropped connections for idempotent requests, and refused
    connections for every request (they were never sent). A ``Retry-After``
    (header, or ``retry_after`` in the body) is honoured up to
    :attr:`max_retry_after`; otherwise the wait is exponential backoff with
    full jitter. No wait outlives the call's ``total`` timeout.

    ``sleep`` is the coroutine that waits. Tests pass one that records the
    delays instead of sleeping through them.
    """

    max_attempts: int = attrs.field(default=6, validator=_at_least_one)
    """Attempts per call, the first included; 1 switches retries off."""
    backoff_base: float = attrs.field(default=0.25, validator=_positive)
    """The first backoff ceiling; it doubles with every attempt."""
    backoff_max: float = attrs.field(default=30.0, validator=_positive)
    """The largest backoff ceiling."""
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    """The longest ``Retry-After`` honoured; longer ones end the retries."""
    sleep: Callable[[float], Awaitable[None]] = attrs.field(default=_sleep, repr=False)
    """The coroutine that waits between attempts."""

    @classmethod
    def off(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)


def env_api_key() -> str | None:
    return os.environ.get(API_KEY_ENV) or None


def env_base_url() -> str:
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
