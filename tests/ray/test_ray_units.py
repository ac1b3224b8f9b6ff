"""orgo_async.ray without a running Ray: the import hint, secrets, the pace re-split."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.ray.conftest import _require_ray

KEY = "sk_live_do_not_show_0123456789"


def test_import_without_ray_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import orgo_async\n"
        "assert 'ray' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
        "try:\n"
        "    import orgo_async.ray\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "orgo_async.ray needs the 'ray' extra: pip install 'orgo_async[ray]'"
    )


class FakeActor:
    def __init__(self) -> None:
        self.shares: list[tuple[float | None, float]] = []
        self.share = self

    def remote(self, rate: float | None, pause: float) -> None:
        self.shares.append((rate, pause))


def test_a_429_on_one_shard_resplits_the_pace_over_the_others() -> None:
    _require_ray()
    from orgo_async.ray import RayFleet
    from orgo_async.ray._shard import Report

    fleet = RayFleet("ws", 9, actors=3, rate=30.0, api_key=KEY, base_url="http://127.0.0.1:1/api")
    assert fleet.shard_rates == [10.0, 10.0, 10.0]
    actors = [FakeActor() for _ in range(3)]
    for slot, actor in zip(fleet._slots, actors, strict=True):
        slot.actor = actor
    report: dict[str, Any] = dict(ready=(), failures=(), done=False, fatal=None)
    # Shard 1's limiter halved its pace on a 429: every shard takes that pace.
    fleet._take_report(fleet._slots[1], Report(**report, rate=5.0, rate_limited=1, retry_after=0.5))
    assert fleet.rate == 15.0 and fleet.rate_limited == 1
    assert actors[0].shares == actors[2].shares == [(5.0, 0.5)] and actors[1].shares == []
    assert fleet.shard_rates == [5.0, 5.0, 5.0]
    # The same count again is no news: nothing is re-split.
    fleet._take_report(
        fleet._slots[1], Report(**report, rate=5.05, rate_limited=1, retry_after=0.5)
    )
    assert actors[0].shares == [(5.0, 0.5)]


def test_the_key_is_in_no_repr() -> None:
    _require_ray()
    from orgo_async.ray import RayFleet
    from orgo_async.ray._shard import Shard
    from orgo_async.ray._types import Secret

    fleet = RayFleet("ws", 4, api_key=KEY, base_url="http://127.0.0.1:1/api")
    shard = Shard(0, Secret(value=KEY), "http://127.0.0.1:1/api")
    for text in (repr(fleet), repr(shard), repr(Secret(value=KEY)), repr(fleet.__dict__)):
        assert KEY not in text


def test_bad_options_fail_before_ray_is_touched() -> None:
    _require_ray()
    from orgo_async.ray import RayFleet

    with pytest.raises(ValueError, match="actors"):
        RayFleet("ws", 4, actors=0, api_key=KEY)
    with pytest.raises(ValueError, match="count"):
        RayFleet("ws", 0, api_key=KEY)
    with pytest.raises(ValueError, match="ram"):
        RayFleet("ws", 4, api_key=KEY, ram=5)  # type: ignore[arg-type]
    fleet = RayFleet("ws", 3, actors=8, api_key=KEY)
    assert fleet.actors == 3  # no actor without a computer


def test_a_shards_arguments_pickle_and_build_it() -> None:
    _require_ray()
    import pickle

    from orgo_async.ray._shard import Shard
    from orgo_async.ray._types import Secret

    args = pickle.loads(pickle.dumps((0, Secret(value=KEY), "http://127.0.0.1:1/api")))
    shard = Shard(*args, timeouts=None, retry=None)
    assert shard.index == 0 and shard._key.value == KEY
    assert KEY not in repr(shard)


async def test_a_shard_closed_before_its_launch_creates_nothing(emulator: Any) -> None:
    # An actor slow to start may run the driver's close before the launch sent ahead of
    # it: that launch must not create computers that nobody would delete.
    _require_ray()
    from orgo_async import Orgo
    from orgo_async.fleet import fleet_specs
    from orgo_async.ray._shard import Shard
    from orgo_async.ray._types import Secret

    async with Orgo(api_key=emulator.api_key, base_url=emulator.base_url) as orgo:
        workspace = await orgo.workspaces.create("closed-shard")
        specs = fleet_specs(workspace.id, count=3, specs=None, prefix="closed")
        shard = Shard(0, Secret(value=emulator.api_key), emulator.base_url)
        assert await shard.close([]) == 0
        await shard.launch(
            workspace.id, specs, concurrency=3, rate=None, ready_timeout=None, deadline=None
        )
        assert shard._launch is None and shard._done
        assert await orgo.computers.list(workspace.id) == []
        assert emulator.counters.requests.get("POST /api/computers", 0) == 0
