"""Fleets and agent loops sharded over Ray (extra ``ray``: ``pip install 'orgo_async[ray]'``).

One asyncio process holds a few hundred busy agent loops before its CPU is
the limit. :class:`RayFleet` spreads a fleet over Ray async actors, each with
its own :class:`~orgo_async.Orgo` session and slice of the computers, and runs
your episodes on the actor that owns each computer::

    import ray
    from orgo_async.ray import RayFleet

    async def episode(orgo, computer):
        desktop = orgo.desktop(computer)
        await desktop.bash("uname -a")
        return len((await desktop.screenshot()).data)

    ray.init()  # or ray.init(address="auto") on a cluster
    async with RayFleet(workspace_id, 1000, actors=8) as fleet:
        async for result in fleet.map(episode):
            ...

Importing :mod:`orgo_async` never imports ray; importing this package does.
"""

from __future__ import annotations

try:
    import ray as _ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "orgo_async.ray needs the 'ray' extra: pip install 'orgo_async[ray]'"
    ) from exc

from ._fleet import RayFleet
from ._types import ActorLost, EpisodeError, EpisodeResult, RayComputer, RayFleetResult

__all__ = [
    "ActorLost",
    "EpisodeError",
    "EpisodeResult",
    "RayComputer",
    "RayFleet",
    "RayFleetResult",
]
