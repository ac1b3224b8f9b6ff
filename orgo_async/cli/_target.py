"""What the ``orgo-async`` commands act on: a session, a workspace, a computer.

:func:`open_target` opens an :class:`~orgo_async.Orgo` session either on a
fresh emulator started in a child process (``--emulator``) or on
``--base-url`` / ``ORGO_BASE_URL`` with the key in ``ORGO_API_KEY``.
:meth:`Target.workspace` finds a workspace by id or name (creating it when
asked), and :meth:`Target.computer` reads a computer by id, or launches one for
the id ``new`` and deletes it again when the target is closed.

Every secret the command line meets (the API key, a spawned emulator's key,
each computer's ``vnc_password``) is recorded with
:func:`~orgo_async.cli._output.remember_secret`, so that nothing the CLI
prints shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import attrs

from .._aio import run_shielded
from .._client import Orgo
from .._config import env_api_key
from ..errors import NotFoundError, OrgoError
from ..models import Computer, Workspace
from ._output import PROG, describe, log, note, remember_secret
from ._runner import stop_if_abandoned
from ._spawn import EmulatorProcess, emulator_process

T = TypeVar("T")

DEFAULT_WORKSPACE: Final = "orgo-async"
"""The workspace the commands use when no ``--workspace`` is given."""

NEW: Final = "new"
"""The computer id that means: launch one computer first (deleted when the command ends)."""

NEW_PREFIX: Final = "orgo-async-new"
"""Name prefix of the computers launched for ``new`` (``rm --prefix`` reaps leftovers)."""

_KEEP_ONE_RUNNING: Final = (
    f"to keep one running: '{PROG} emulator --port 8000' in another terminal, then "
    "'export ORGO_BASE_URL=http://127.0.0.1:8000/api ORGO_API_KEY=sk_emulator'"
)

_NEW_READY_TIMEOUT: Final = 120.0
DELETE_CONCURRENCY: Final = 32
"""How many deletes :func:`delete_computers` keeps in flight."""

# --------------------------------------------------------------------------- data


def computer_fields(computer: Computer) -> dict[str, Any]:
    """A computer as JSON-ready fields, never with its ``vnc_password``."""
    fields = attrs.asdict(computer, recurse=False)
    fields.pop("vnc_password", None)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, str):
            value = str(value)  # an open-enum status becomes a plain string
        out[key] = value
    return out


def _placed(computer: Computer, workspace: Workspace) -> Computer:
    """``computer`` with the id and name of the workspace it was listed in, where it has none."""
    return attrs.evolve(
        computer,
        workspace_id=computer.workspace_id or workspace.id,
        project_name=computer.project_name or workspace.name or None,
    )


# --------------------------------------------------------------------------- the target


@attrs.define
class Target:
    """An open session, and what the command made that must go when it ends.

    Attributes:
        orgo: The session.
        emulator: The emulator child process with ``--emulator``, else ``None``.
    """

    orgo: Orgo
    emulator: EmulatorProcess | None = None
    _launched: list[Computer] = attrs.field(factory=list)
    _workspaces: list[Workspace] | None = None

    @property
    def spawned(self) -> bool:
        """Whether the target is an emulator started for this command (it starts empty)."""
        return self.emulator is not None

    async def workspace(self, name_or_id: str | None, *, create: bool) -> Workspace:
        """The workspace with this id or name (default :data:`DEFAULT_WORKSPACE`).

        With ``create`` (and always on a spawned emulator) a missing one is
        created under that name.

        Raises:
            NotFoundError: no such workspace, and ``create`` is false.
        """
        wanted = name_or_id or DEFAULT_WORKSPACE
        for workspace in await self._list_workspaces():
            if workspace.id == wanted:
                return workspace
        for workspace in await self._list_workspaces():
            if workspace.name == wanted:
                return workspace
        if not (create or self.spawned):
            raise NotFoundError(
                status=404,
                message=f"no workspace with the id or name {wanted!r}",
                code="workspace_not_found",
            )
        workspace = await self.orgo.workspaces.create(wanted)
        log.debug("created workspace %s (%s)", workspace.name, workspace.id)
        self._workspaces = None
        return workspace

    async def computers(self, workspace: str | None) -> list[Computer]:
        """The computers of one workspace (id or name), or of every workspace.

        Each carries its workspace's id and name (``workspace_id``,
        ``project_name``), taken from the workspace it was listed in where
        the API left them out.
        """
        if workspace is None:
            workspaces = await self._list_workspaces()
        else:
            found = await self.workspace(workspace, create=False)
            workspaces = [await self.orgo.workspaces.get(found.id)]
        return [_placed(c, ws) for ws in workspaces for c in ws.computers]

    async def computer(self, computer_id: str, *, workspace: str | None = None) -> Computer:
        """The computer with this id, as it is now; ``new`` launches one first.

        A computer launched for ``new`` goes into ``workspace`` (created if
        missing), waits until it is ready, and is deleted when the target closes.

        Raises:
            NotFoundError: no such computer.
            ReadyTimeout, ComputerFailedError: a ``new`` computer did not become ready.
        """
        if computer_id == NEW:
            ws = await self.workspace(workspace, create=True)
            name = f"{NEW_PREFIX}-{secrets.token_hex(3)}"
            launched = await self.orgo.computers.launch(
                workspace_id=ws.id, name=name, ready_timeout=_NEW_READY_TIMEOUT
            )
            self._launched.append(launched.computer)
            remember_secret(launched.computer.vnc_password)
            log.debug("launched computer %s (%s) for 'new'", launched.computer.id, name)
            computer_id = launched.computer.id
        computer = await self.orgo.computers.get(computer_id)
        remember_secret(computer.vnc_password)
        return computer

    async def close(self) -> None:
        """Delete the computers launched for ``new`` (a failure is logged, not raised)."""
        doomed, self._launched = self._launched, []
        for computer in doomed:
            try:
                await self.orgo.computers.delete(computer, missing_ok=True)
            except OrgoError as exc:
                log.warning("could not delete computer %s launched for 'new': %s", computer.id, exc)

    async def _list_workspaces(self) -> list[Workspace]:
        if self._workspaces is None:
            self._workspaces = await self.orgo.workspaces.list()
            for workspace in self._workspaces:
                for computer in workspace.computers:
                    remember_secret(computer.vnc_password)
        return self._workspaces


@contextlib.asynccontextmanager
async def open_target(
    *,
    emulator: bool,
    base_url: str | None,
    verbose: bool = False,
    boot_ms: float | None = None,
    emulator_args: Iterable[str] = (),
) -> AsyncIterator[Target]:
    """An open :class:`Target`; leaving the block deletes what ``new`` made, then closes.

    Args:
        emulator: Start an emulator in a child process and use it (stopped on exit).
        base_url: Otherwise the API root (default ``ORGO_BASE_URL``); the key is
            ``ORGO_API_KEY``.
        verbose: Let the spawned emulator log at ``info``.
        boot_ms: The spawned emulator's boot time (its default if ``None``).
        emulator_args: More options for the spawned emulator.

    Raises:
        MissingAPIKeyError: no ``ORGO_API_KEY`` for a target that is not spawned.
        EmulatorStartError: the emulator child did not start.
        ValueError: ``base_url`` is not an http(s) URL.
    """
    remember_secret(env_api_key())
    async with contextlib.AsyncExitStack() as stack:
        spawned: EmulatorProcess | None = None
        api_key = None
        if emulator:
            spawned = await stack.enter_async_context(
                emulator_process(
                    boot_ms=boot_ms,
                    extra_args=tuple(emulator_args),
                    log_level="info" if verbose else "warning",
                )
            )
            stack.enter_context(stop_if_abandoned(spawned.pid))
            remember_secret(spawned.api_key)
            api_key, base_url = spawned.api_key, spawned.base_url
        orgo = await stack.enter_async_context(Orgo(api_key, base_url=base_url))
        target = Target(orgo, spawned)
        try:
            yield target
        finally:
            await run_shielded(target.close())


def target_of(
    args: argparse.Namespace, **options: Any
) -> contextlib.AbstractAsyncContextManager[Target]:
    """The :class:`Target` the global options name (an async context manager)."""
    return open_target(
        emulator=args.emulator, base_url=args.base_url, verbose=args.verbose, **options
    )


def note_short_lived(command: str, what: str) -> None:
    """Say on stderr that ``--emulator``'s emulator ends with the command, and how to keep one."""
    note(f"{PROG} {command}: --emulator: {what}; {_KEEP_ONE_RUNNING}")


async def with_computer(
    args: argparse.Namespace, action: Callable[[Target, Computer], Awaitable[T]]
) -> T:
    """Open the target, read (or launch, for ``new``) the computer ``args.id``, run ``action``."""
    async with target_of(args) as target:
        computer = await target.computer(args.id, workspace=args.workspace)
        return await action(target, computer)


async def delete_computers(orgo: Orgo, doomed: Sequence[Computer]) -> list[str]:
    """Delete computers, a few at a time; return the ids that could not be (each logged)."""
    gate = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def delete(computer: Computer) -> None:
        async with gate:
            await orgo.computers.delete(computer, missing_ok=True)

    results = await asyncio.gather(*(delete(c) for c in doomed), return_exceptions=True)
    left: list[str] = []
    for computer, result in zip(doomed, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not delete computer %s: %s", computer.id, describe(result))
            left.append(computer.id)
    return left
