"""``orgo.computers``: create, get, list, delete, lifecycle, clone, move, resize, credentials."""

from __future__ import annotations

import asyncio
import builtins
import logging
from typing import TYPE_CHECKING, Any, Unpack

import attrs

from .._aio import run_shielded
from .._checks import check_choice, check_id, check_int, check_seconds, check_text, optional
from .._config import RetryPolicy, Timeouts
from .._converter import unstructure_spec
from .._http import Response
from .._observe import RetryCounter, RetryObserver
from .._retry import backoff
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConflictError,
    CreateOutcomeUnknown,
    MethodNotAllowedError,
    NotFoundError,
    OrgoError,
)
from ..health import ProbeBudget, ReadyInfo, wait_ready
from ..models import (
    CPU_CHOICES,
    MAX_NAME_LENGTH,
    RESIZE_MEM_CHOICES,
    AutoStop,
    Computer,
    ComputerFields,
    ComputerSpec,
    ComputerStatus,
    LaunchedComputer,
    ResizeResult,
    VncCredentials,
)
from ._base import path_id
from .computer_extras import ComputerExtras

if TYPE_CHECKING:
    from .._session import Session
    from .workspaces import Workspaces

log = logging.getLogger("orgo_async")

ComputerRef = str | Computer
"""A computer given by id, or the Computer itself (which also lends its instance id)."""


def _ref_id(ref: ComputerRef) -> str:
    return path_id(ref.id if isinstance(ref, Computer) else ref, "computer id")


class Computers(ComputerExtras):
    """Computers; reach it as ``orgo.computers`` (streams, resume, fork: see the base class)."""

    def __init__(self, session: Session, *, workspaces: Workspaces) -> None:
        super().__init__(session)
        self._workspaces = workspaces  # Orgo has no GET /computers: lists read workspaces

    # -- create ------------------------------------------------------------------

    async def create(
        self,
        *,
        workspace_id: str,
        name: str,
        timeout: Timeouts | float | None = None,
        **fields: Unpack[ComputerFields],
    ) -> Computer:
        """Create a computer; it starts booting at once (poll readiness with ``wait_ready``).

        The create is never blindly replayed. If its answer is lost, the computer
        is looked up by its name (unique in the workspace) and the create is sent
        again only if it is not there, so you get exactly one computer.

        Args:
            workspace_id: The workspace to create it in.
            name: Unique within the workspace.
            **fields: ``os``, ``ram``, ``cpu``, ``disk_size_gb``, ``resolution``,
                ``auto_stop_minutes``, ``template_ref`` (see :class:`ComputerFields`).

        Raises:
            ValueError: a field is out of range (before any request is sent).
            ConflictError: the name is taken in the workspace.
            NotFoundError: no such workspace.
            CreateOutcomeUnknown: the answer was lost and the lookup failed too.
        """
        spec = ComputerSpec(workspace_id=workspace_id, name=name, **fields)
        return await self.create_from(spec, timeout=timeout)

    async def create_from(
        self,
        spec: ComputerSpec,
        *,
        timeout: Timeouts | float | None = None,
        retry: RetryPolicy | None = None,
        observer: RetryObserver | None = None,
    ) -> Computer:
        """:meth:`create` from a :class:`ComputerSpec` (already validated).

        ``observer`` is told of every retry, a lost answer's re-send included.
        """
        body = unstructure_spec(spec)
        try:
            return await self._post(
                "/computers",
                cast_to=Computer,
                json=body,
                timeout=timeout,
                retry=retry,
                observer=observer,
            )
        except APIConnectionError as exc:
            if not exc.sent:
                raise  # it never reached the server: nothing was created
            policy = retry or self._session.retry
            return await self._reconcile(spec, body, exc, timeout, policy, observer)

    async def _reconcile(
        self,
        spec: ComputerSpec,
        body: dict[str, Any],
        lost: APIConnectionError,
        timeout: Timeouts | float | None,
        policy: RetryPolicy,
        observer: RetryObserver | None,
    ) -> Computer:
        # The create may or may not have happened. The name is unique in the
        # workspace, so: look it up, and only if it is absent send it again. A
        # first create that lands late makes the replay answer 409, which sends
        # us back to the lookup. Either way exactly one computer exists.
        reason: OrgoError = lost
        for attempt in range(policy.max_attempts):
            if attempt:
                await policy.sleep(backoff(attempt - 1, policy))
            try:
                found = await self.find(spec.workspace_id, spec.name, timeout=timeout)
                if found is not None:
                    return found
                if observer is not None:
                    observer.on_retry(reason, 0.0)  # the create is sent again
                return await self._post(
                    "/computers",
                    cast_to=Computer,
                    json=body,
                    timeout=timeout,
                    retry=policy,
                    observer=observer,
                )
            except ConflictError as exc:
                reason = exc
            except APIConnectionError as exc:
                reason = exc
        raise CreateOutcomeUnknown(
            name=spec.name, workspace_id=spec.workspace_id, reason=str(reason)
        ) from reason

    # -- readiness ---------------------------------------------------------------

    async def wait_ready(
        self,
        computer: Computer,
        *,
        timeout: float | None = 120.0,
        since: float | None = None,
        created: tuple[float, float] | None = None,
        budget: ProbeBudget | None = None,
    ) -> ReadyInfo:
        """Wait until the computer answers its health probe (see :mod:`orgo_async.health`).

        Args:
            timeout: Seconds from now to give up (``None``: never).
            since: When the server started the boot (``loop.time()``; default: now).
            created: Instead of ``since``: when this computer's create was sent and
                answered (``loop.time()`` values); the boot's start is then read
                from its ``created_at`` on the server's clock.
            budget: A probe budget shared with other waits (a fleet's); by default
                the probes pace themselves alone.

        Raises:
            ReadyTimeout: the deadline passed first.
            ComputerFailedError: it is (or became) ``error``, ``stopped``, ``deleting`` or gone.
        """
        return await wait_ready(
            self._session,
            self,
            computer,
            timeout=timeout,
            since=since,
            created=created,
            budget=budget,
        )

    async def launch(
        self,
        *,
        workspace_id: str,
        name: str,
        ready_timeout: float | None = 120.0,
        delete_on_failure: bool = True,
        timeout: Timeouts | float | None = None,
        **fields: Unpack[ComputerFields],
    ) -> LaunchedComputer:
        """Create a computer and wait until it is ready, in one call.

        Takes the fields of :meth:`create`. If the computer does not become
        ready (or the call is cancelled meanwhile), it is deleted, unless
        ``delete_on_failure`` is false. Cancelled while the create is in
        flight, the create still finishes and its computer is deleted, always:
        you never saw it. The cleanup is shielded: a second cancellation
        cannot stop it half way.

        Returns:
            The ready computer (its status ``running``) and the
            :class:`LaunchTiming` of the launch.

        Raises:
            ValueError: a field is out of range (before any request).
            ReadyTimeout, ComputerFailedError: it did not become ready.
            Any error of :meth:`create`.
        """
        spec = ComputerSpec(workspace_id=workspace_id, name=name, **fields)
        return await self.launch_from(
            spec, ready_timeout=ready_timeout, delete_on_failure=delete_on_failure, timeout=timeout
        )

    async def launch_from(
        self,
        spec: ComputerSpec,
        *,
        ready_timeout: float | None = 120.0,
        delete_on_failure: bool = True,
        timeout: Timeouts | float | None = None,
        retry: RetryPolicy | None = None,
    ) -> LaunchedComputer:
        """:meth:`launch` from a :class:`ComputerSpec`."""
        optional(check_seconds)("ready_timeout", ready_timeout, inclusive=False)
        loop = asyncio.get_running_loop()
        counter = RetryCounter()
        sent = loop.time()
        # Shielded: cancelled while the create is in flight, the create still
        # finishes, and what it made is deleted (the caller never saw it).
        create = loop.create_task(
            self.create_from(spec, timeout=timeout, retry=retry, observer=counter)
        )
        try:
            computer = await asyncio.shield(create)
        except asyncio.CancelledError:
            await run_shielded(self._abandon(create, spec))
            raise
        answered = loop.time()
        try:
            info = await wait_ready(
                self._session,
                self,
                computer,
                timeout=ready_timeout,
                created=(sent, answered),
            )
        except BaseException as exc:
            if delete_on_failure:
                await _delete_after_failure(self, computer, exc)
            raise
        timing = info.timing(sent=sent, answered=answered, retries=counter.retries)
        running = attrs.evolve(computer, status=ComputerStatus.RUNNING)
        return LaunchedComputer(computer=running, timing=timing)

    async def _abandon(self, create: asyncio.Task[Computer], spec: ComputerSpec) -> None:
        """Delete whatever a create that nobody will receive made (cancellation cleanup)."""
        try:
            computer: Computer | None = await create
        except (CreateOutcomeUnknown, APIConnectionError):
            # It may exist without our knowing: the name is unique, look it up.
            try:
                computer = await self.find(spec.workspace_id, spec.name)
            except OrgoError as exc:
                log.warning("could not look up abandoned create %r: %s", spec.name, exc)
                return
        except OrgoError:
            return  # refused: nothing was made
        if computer is not None:
            try:
                await self.delete(computer, missing_ok=True)
            except OrgoError as exc:
                log.warning("could not delete abandoned computer %s: %s", computer.id, exc)

    # -- read --------------------------------------------------------------------

    async def get(
        self, computer: ComputerRef, *, timeout: Timeouts | float | None = None
    ) -> Computer:
        """The computer as it is now (with its current ``vnc_password``).

        Raises:
            NotFoundError: no such computer.
        """
        return await self._get(f"/computers/{_ref_id(computer)}", cast_to=Computer, timeout=timeout)

    async def list(
        self, workspace_id: str | None = None, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[Computer]:
        """The computers of one workspace, or of every workspace when none is given.

        Orgo has no ``GET /computers``; this reads the workspace's ``desktops``.
        """
        if workspace_id is not None:
            workspace = await self._workspaces.get(workspace_id, timeout=timeout)
            return builtins.list(workspace.computers)
        workspaces = await self._workspaces.list(timeout=timeout)
        return [c for ws in workspaces for c in ws.computers]

    async def find(
        self, workspace_id: str, name: str, *, timeout: Timeouts | float | None = None
    ) -> Computer | None:
        """The computer with this name in the workspace, or ``None``."""
        for computer in await self.list(workspace_id, timeout=timeout):
            if computer.name == name:
                if computer.vnc_password is None:
                    return await self.get(computer.id, timeout=timeout)
                return computer
        return None

    # -- lifecycle ---------------------------------------------------------------

    async def delete(
        self,
        computer: ComputerRef,
        *,
        missing_ok: bool = False,
        timeout: Timeouts | float | None = None,
    ) -> None:
        """Delete a computer.

        Raises:
            NotFoundError: no such computer (unless ``missing_ok``).
        """
        try:
            await self._delete(f"/computers/{_ref_id(computer)}", timeout=timeout)
        except NotFoundError:
            if not missing_ok:
                raise

    async def start(
        self, computer: ComputerRef, *, timeout: Timeouts | float | None = None
    ) -> ComputerStatus:
        """Start a stopped computer (a cold boot: new IP, new ``vnc_password``).

        Returns the status Orgo reports (``starting``).

        Raises:
            ConflictError: it is not stopped.
        """
        return await self._lifecycle(computer, "start", timeout)

    async def stop(
        self, computer: ComputerRef, *, timeout: Timeouts | float | None = None
    ) -> ComputerStatus:
        """Stop a computer (no compute charge while stopped).

        Raises:
            ConflictError: it is not running.
        """
        return await self._lifecycle(computer, "stop", timeout)

    async def restart(
        self,
        computer: ComputerRef,
        *,
        stop_timeout: float = 120.0,
        timeout: Timeouts | float | None = None,
    ) -> ComputerStatus:
        """Restart a computer; its ``vnc_password`` rotates.

        Legacy hosts answer 405 to restart: then this stops the computer, waits
        (up to ``stop_timeout`` seconds) until it is stopped, and starts it.

        Raises:
            ConflictError: it is not running.
            APITimeoutError: (fallback only) it did not stop in time, phase ``stop``.
        """
        try:
            return await self._lifecycle(computer, "restart", timeout)
        except MethodNotAllowedError:
            pass
        await self.stop(computer, timeout=timeout)
        await self._wait_for_status(computer, ComputerStatus.STOPPED, stop_timeout, timeout)
        return await self.start(computer, timeout=timeout)

    async def _lifecycle(
        self, computer: ComputerRef, verb: str, timeout: Timeouts | float | None
    ) -> ComputerStatus:
        try:
            body = await self._post(
                f"/computers/{_ref_id(computer)}/{verb}", cast_to=Response, timeout=timeout
            )
        except NotFoundError:
            # In 2026-04 lifecycle routes took only the instance id (docs/orgo-api.md §1.4).
            instance = computer.instance_id if isinstance(computer, Computer) else None
            if not instance or instance == _ref_id(computer):
                raise
            body = await self._post(
                f"/computers/{path_id(instance, 'instance id')}/{verb}",
                cast_to=Response,
                timeout=timeout,
            )
        answer = body.json()
        status = answer.get("status") if isinstance(answer, dict) else None
        return ComputerStatus(status) if isinstance(status, str) else ComputerStatus(verb + "ing")

    async def _wait_for_status(
        self,
        computer: ComputerRef,
        wanted: ComputerStatus,
        within: float,
        timeout: Timeouts | float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.05
        while True:
            current = await self.get(computer, timeout=timeout)
            if current.status == wanted:
                return
            if loop.time() + delay > deadline:
                raise APITimeoutError(
                    phase=wanted.value,
                    seconds=within,
                    method="GET",
                    path=f"/computers/{_ref_id(computer)}",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def clone(
        self,
        computer: ComputerRef,
        *,
        name: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> Computer:
        """Clone a running computer (a full disk copy); the clone is always on.

        Args:
            name: The clone's name; Orgo's default is ``"<name> (clone)"``.

        Raises:
            InvalidRequestError: the source is not running (``NOT_CLONABLE``).
        """
        optional(check_text)("name", name, max_length=MAX_NAME_LENGTH)
        body = {} if name is None else {"name": name}
        return await self._post(
            f"/computers/{_ref_id(computer)}/clone", cast_to=Computer, json=body, timeout=timeout
        )

    async def move(
        self, computer: ComputerRef, *, workspace_id: str, timeout: Timeouts | float | None = None
    ) -> None:
        """Move a computer to another workspace.

        Raises:
            InvalidRequestError: it is already there.
            ConflictError: its name is taken in the target.
        """
        await self._patch(
            f"/computers/{_ref_id(computer)}/move",
            cast_to=type(None),
            json={"workspace_id": check_id("workspace_id", workspace_id)},
            timeout=timeout,
        )

    async def resize(
        self,
        computer: ComputerRef,
        *,
        vcpus: int | None = None,
        mem_gb: int | None = None,
        disk_size_gb: int | None = None,
        bandwidth_limit_mbps: int | None = None,
        auto_stop_minutes: int | None = None,
        timeout: Timeouts | float | None = None,
    ) -> ResizeResult:
        """Resize a running computer. A CPU or memory change restarts it (new ``vnc_password``).

        Sends ``vcpus``/``mem_gb``: the ``cpu``/``ram`` keys of create are silently
        ignored by this route. Some dimensions may fail while others apply: check
        :attr:`ResizeResult.partial` and :attr:`ResizeResult.results`.

        Raises:
            ValueError: nothing to change, or a value out of range (before any request).
            InvalidRequestError: every dimension failed (422), or a disk shrink (400).
            ConflictError: it is not running.
        """
        checked = {
            "vcpus": optional(check_choice)("vcpus", vcpus, CPU_CHOICES),
            "mem_gb": optional(check_choice)("mem_gb", mem_gb, RESIZE_MEM_CHOICES),
            "disk_size_gb": optional(check_int)("disk_size_gb", disk_size_gb, minimum=1),
            "bandwidth_limit_mbps": optional(check_int)(
                "bandwidth_limit_mbps", bandwidth_limit_mbps, minimum=1
            ),
            "auto_stop_minutes": optional(check_int)(
                "auto_stop_minutes", auto_stop_minutes, minimum=0
            ),
        }
        body = {k: v for k, v in checked.items() if v is not None}
        if not body:
            raise ValueError(
                "resize needs at least one of vcpus, mem_gb, disk_size_gb, "
                "bandwidth_limit_mbps, auto_stop_minutes"
            )
        return await self._patch(
            f"/computers/{_ref_id(computer)}/resize",
            cast_to=ResizeResult,
            json=body,
            timeout=timeout,
        )

    async def get_auto_stop(
        self, computer: ComputerRef, *, timeout: Timeouts | float | None = None
    ) -> AutoStop:
        """The computer's auto-stop setting."""
        return await self._get(
            f"/computers/{_ref_id(computer)}/auto-stop", cast_to=AutoStop, timeout=timeout
        )

    async def set_auto_stop(
        self, computer: ComputerRef, minutes: int, *, timeout: Timeouts | float | None = None
    ) -> AutoStop:
        """Set auto-stop to ``minutes`` of inactivity; 0 keeps the computer always on.

        Raises:
            ValueError: minutes is not a whole number >= 0.
            PermissionDeniedError: the plan fixes it (free tier).
        """
        body = {"auto_stop_minutes": check_int("minutes", minutes, minimum=0)}
        return await self._patch(
            f"/computers/{_ref_id(computer)}/auto-stop",
            cast_to=AutoStop,
            json=body,
            timeout=timeout,
        )

    async def vnc_password(
        self, computer: ComputerRef, *, timeout: Timeouts | float | None = None
    ) -> VncCredentials:
        """The computer's current WebSocket token(s); they rotate on every start and restart."""
        return await self._get(
            f"/computers/{_ref_id(computer)}/vnc-password", cast_to=VncCredentials, timeout=timeout
        )


async def _delete_after_failure(
    computers: Computers, computer: Computer, cause: BaseException
) -> None:
    try:
        await run_shielded(computers.delete(computer, missing_ok=True))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the launch's own error matters more; keep this one as a note
        log.warning("could not delete computer %s after a failed launch: %s", computer.id, exc)
        cause.add_note(f"orgo_async: deleting computer {computer.id} failed too: {exc}")
