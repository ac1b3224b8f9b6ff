"""Run the emulator in a child process, for the CLI and the benchmarks.

::

    async with emulator_process(boot_ms=300) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            ...

The child is ``python -m orgo_async.emulator`` (with this interpreter,
``sys.executable``) on 127.0.0.1, port 0, with a fresh random API key. Its
first stdout line, ``ORGO_BASE_URL=...``, says it accepts connections; its
stderr is this process's stderr, so its warnings stay visible. On leaving the
block, normally, by an error or by cancellation, it gets SIGTERM, then SIGKILL
if it has not exited within ``stop_timeout``; that cleanup is shielded from
cancellation so the child is never left running.

The emulator runs in its own process, so its CPU time is never counted in
this process's ``time.process_time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence

import attrs

from .._aio import run_shielded

log = logging.getLogger("orgo_async.spawn")

_ANNOUNCE = b"ORGO_BASE_URL="


class EmulatorStartError(Exception):
    """The emulator child process did not come up (exited, timed out, or said something else)."""


@attrs.frozen(kw_only=True)
class EmulatorProcess:
    """A running emulator child: where it serves and the key it wants (not in ``repr``).

    Attributes:
        base_url: The API root, ``http://127.0.0.1:PORT/api``.
        api_key: The bearer key the emulator requires.
        pid: The child's process id.
    """

    base_url: str
    api_key: str = attrs.field(repr=False)
    pid: int

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where the ``/_emulator/...`` admin routes live."""
        return self.base_url.removesuffix("/api")


@contextlib.asynccontextmanager
async def emulator_process(
    *,
    boot_ms: float | None = None,
    boot_jitter_ms: float | None = None,
    extra_args: Sequence[str] = (),
    log_level: str = "warning",
    start_timeout: float = 20.0,
    stop_timeout: float = 5.0,
) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator in a child process; stop it when the block is left.

    Args:
        boot_ms: ``--boot-ms`` (the emulator's default if ``None``).
        boot_jitter_ms: ``--boot-jitter-ms`` (the emulator's default if ``None``).
        extra_args: More ``python -m orgo_async.emulator`` options (faults, limits...).
        log_level: The child's stderr log level.
        start_timeout: Seconds to wait for the ``ORGO_BASE_URL=`` line.
        stop_timeout: Seconds between SIGTERM and SIGKILL.

    Raises:
        EmulatorStartError: the child exited, printed something else, or was
            silent for ``start_timeout`` seconds (it is killed then).
    """
    api_key = "sk_emulator_" + secrets.token_hex(16)
    argv = [
        sys.executable,
        "-m",
        "orgo_async.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        api_key,
        "--log-level",
        log_level,
    ]
    if boot_ms is not None:
        argv += ["--boot-ms", f"{boot_ms:g}"]
    if boot_jitter_ms is not None:
        argv += ["--boot-jitter-ms", f"{boot_jitter_ms:g}"]
    argv += list(extra_args)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
    except OSError as exc:
        raise EmulatorStartError(f"could not start {sys.executable}: {exc}") from exc
    log.debug("emulator child started, pid %d", proc.pid)
    try:
        base_url = await _read_announcement(proc, start_timeout)
        log.debug("emulator child %d serves %s", proc.pid, base_url)
        yield EmulatorProcess(base_url=base_url, api_key=api_key, pid=proc.pid)
    finally:
        await run_shielded(_stop(proc, stop_timeout))


async def _read_announcement(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        raise EmulatorStartError(
            f"the emulator did not announce its address within {timeout:g} s"
        ) from None
    if not line:
        status = await proc.wait()
        raise EmulatorStartError(
            f"the emulator exited with status {status} before serving (see its stderr above)"
        )
    if not line.startswith(_ANNOUNCE):
        shown = line[:80].decode("utf-8", "replace").strip()
        raise EmulatorStartError(f"the emulator's first line was not ORGO_BASE_URL=...: {shown!r}")
    return line[len(_ANNOUNCE) :].decode().strip()


async def _stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("emulator child %d ignored SIGTERM for %g s; killing it", proc.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    # 0: a clean stop; -SIGTERM: the signal came before its handler was installed.
    if proc.returncode not in (0, -signal.SIGTERM, None):
        log.warning("emulator child %d exited with status %s", proc.pid, proc.returncode)
