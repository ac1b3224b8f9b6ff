"""The desktop proxy's health probe and the rest of ``/api/desktops/{instance_id}/proxy/``.

``GET /api/desktops/{instance_id}/proxy/health`` answers 200 ``{"status":
"ok"}`` from the exact clock time the computer's boot completes, and 503
``desktop_unavailable`` before (and while it is stopped or failed); every
probe is counted in ``counters.health_probes``, a probe a fault answered
included, and the most probes of one computer in flight at once in
``counters.health_inflight_max`` (:func:`probe_started` / :func:`probe_ended`,
called by the request pipeline around faults and handler alike). The desktop
actions behind the proxy have their own routes (:mod:`.desktop`); any other
path under the proxy answers 404 (405 for an action with the wrong method).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web

from ..store import ApiError, Computer, or_404
from ._base import emulator_of, ok
from .desktop import ACTIONS, PROXY_PATH, proxied_computer, proxy_unavailable

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "HEALTH_ROUTE",
    "add_fallback",
    "add_routes",
    "count_probe",
    "desktop_health",
    "desktop_proxy",
    "probe_ended",
    "probe_started",
]

HEALTH_ROUTE: Final = "desktop_health"
"""The probe route's name: the request pipeline counts its probes in flight."""


def add_routes(router: web.UrlDispatcher) -> None:
    """Map the probe. Routes are matched in the order they were added, and the probe is
    the emulator's busiest: map it before any other."""
    router.add_route("GET", PROXY_PATH + "/health", desktop_health, name=HEALTH_ROUTE)


def add_fallback(router: web.UrlDispatcher) -> None:
    """Map the catch-all for the proxy's other paths (404 unknown endpoint, 405 wrong
    method): after :func:`.desktop.add_routes`, since routes match in order."""
    router.add_route("*", PROXY_PATH + "/{endpoint:.+}", desktop_proxy)


def count_probe(emu: Emulator, key: str) -> Computer | None:
    """Count a health probe of the computer ``key`` names; the computer, if there is one."""
    computer = emu.state.find_computer(key)
    if computer is not None:
        probes = emu.counters.health_probes
        probes[computer.id] = probes.get(computer.id, 0) + 1
    return computer


def probe_started(emu: Emulator, key: str) -> str | None:
    """A probe of the computer ``key`` names arrived; its id, to pass to :func:`probe_ended`."""
    computer = emu.state.find_computer(key)
    if computer is None:
        return None
    emu.counters.probe_started(computer.id)
    return computer.id


def probe_ended(emu: Emulator, computer_id: str | None) -> None:
    """The probe :func:`probe_started` returned ``computer_id`` for has been answered."""
    if computer_id is not None:
        emu.counters.probe_ended(computer_id)


async def desktop_health(request: web.Request) -> web.Response:
    """GET /api/desktops/{instance_id}/proxy/health: 200 from the instant the boot completes."""
    emu = emulator_of(request)
    instance_id = request.match_info["instance_id"]
    computer = or_404(count_probe(emu, instance_id), "computer_not_found", "Desktop not found")
    # The clock is read here, after everything else, so 200 never precedes ready_at.
    if computer.is_running(emu.state.now()):
        return ok({"status": "ok"})
    raise proxy_unavailable()


async def desktop_proxy(request: web.Request) -> web.Response:
    """Any other /api/desktops/{instance_id}/proxy/{endpoint}.

    The desktop actions have their own routes (:mod:`.desktop`); what
    reaches this one is an unknown endpoint (404 from a running desktop) or
    a known one with the wrong method (405).
    """
    proxied_computer(emulator_of(request).state, request.match_info["instance_id"])
    known = ACTIONS.get(request.match_info["endpoint"])
    if known is not None:
        method = known[0]
        raise ApiError(
            405,
            "method_not_allowed",
            f"Method not allowed: use {method}",
            headers={"Allow": method},
        )
    raise ApiError(404, "not_found", "Unknown desktop endpoint", upstream_status=404)
