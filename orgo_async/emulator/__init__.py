"""A local emulator of Orgo's cloud-computer API: REST, health proxy and desktop sockets.

``async with Emulator(EmulatorConfig(...)) as emu:`` serves the API on
``emu.base_url`` (``http://127.0.0.1:PORT/api``), with ``emu.api_key`` as the
bearer key. Computers boot in ``config.boot`` (300 ms by default) through
``creating`` → ``starting`` → ``running``, and
``GET /api/desktops/{instance_id}/proxy/health`` answers 200 from that exact
moment. ``emu.faults`` injects 429/503 answers, dropped connections, delays
and lost responses; ``emu.counters`` records what clients did.

Each running computer also serves Orgo's desktop WebSockets,
``ws://HOST:PORT/desktops/{instance_id}/ws/{terminal|audio|events}`` with its
``vnc_password`` as ``?token=`` or Bearer token: a real PTY shell on the
computer (in its bubblewrap sandbox, :mod:`.sandbox`, where its disk
``emu.workdir(computer)`` is ``/root``), a generated audio tone,
and desktop events (file and process changes, idleness, and anything
``emu.publish_event`` sends). ``emu.close_sockets`` / ``emu.drop_sockets``
break them on purpose; stop, restart and delete close them with 1001.

Run it as a process with ``python -m orgo_async.emulator --port 0``: the first
line on stdout is ``ORGO_BASE_URL=http://127.0.0.1:PORT/api``.

Inside: :mod:`.app` (the server, its application and request pipeline),
:mod:`.config`, :mod:`.counters`, :mod:`.store` (workspaces, computers and
their state machine), :mod:`.faults`, :mod:`.routes` (the REST handlers, one
module per resource), :mod:`.sockets` (the desktop WebSockets, with
:mod:`.shell` and :mod:`.watch` behind them), :mod:`.commands` (the ``bash``
and ``exec`` processes), :mod:`.sandbox` (where a computer's processes run)
and the desktop backends behind ``/ws/websockify``, the screenshots and the
input actions (:mod:`.synthetic`; :mod:`.xvnc`, real desktops and their pool).

The emulator depends only on the standard library, aiohttp and attrs; it never
imports the SDK client (it shares the protocol cores of :mod:`orgo_async.protocol`).
"""

from .app import Emulator
from .config import BootTime, EmulatorConfig
from .counters import Counters
from .faults import FaultRule, Faults

__all__ = [
    "BootTime",
    "Counters",
    "Emulator",
    "EmulatorConfig",
    "FaultRule",
    "Faults",
]
