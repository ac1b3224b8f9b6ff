"""Run the emulator in a child process, for the CLI and the benchmarks.

::

    async with emulator_process(boot_ms=300) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            ...

The child is ``python -m orgo_async.emulator`` (with this interpreter,
``sys.executable``) on 127.0.0.1, port 0, with a fresh random API key. The key
reaches it in its environment (``ORGO_EMULATOR_API_KEY``), never on its command
line: any local user can read a command line (``ps``), and whoever holds the
key has a shell on the emulated computers. Its first stdout line,
``ORGO_BASE_URL=...``, says it accepts connections; its stderr is this
process's stderr, so its warnings stay visible. On leaving the block, normally,
by an error or by cancellation, it gets SIGTERM, then SIGKILL if it has not
exited within ``stop_timeout``; that cleanup is shielded from cancellation so
the child is never left running.

With ``tls=True`` it serves HTTPS and WSS with a self-signed certificate that
it writes to a private temporary directory before announcing itself;
:meth:`EmulatorProcess.ssl_context` trusts exactly that certificate.

The emulator runs in its own process, so its CPU time is never counted in
this process's ``time.process_time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import attrs

from .._aio import run_shielded, signal_child

log = logging.getLogger("orgo_async.spawn")

_ANNOUNCE = b"ORGO_BASE_URL="
# The emulator's own variable (orgo_async.emulator.__main__.API_KEY_ENV; not imported
# from there: spawning must not load the emulator into this process).
_KEY_ENV = "ORGO_EMULATOR_API_KEY"


class EmulatorStartError(Exception):
    """The emulator child process did not come up (exited, timed out, or said something else)."""


@attrs.frozen(kw_only=True)
class EmulatorProcess:
    """A running emulator child: where it serves and the key it wants (not in ``repr``).

    Attributes:
        base_url: The API root, ``http://127.0.0.1:PORT/api`` (``https://`` with TLS).
        api_key: The bearer key the emulator requires.
        pid: The child's process id.
        tls_certificate: The PEM of the certificate it serves with TLS, else ``None``.
    """

    base_url: str
    api_key: str = attrs.field(repr=False)
    pid: int
    tls_certificate: str | None = attrs.field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context that trusts exactly this emulator's certificate (``None``: no TLS).

        For ``Orgo(ssl=...)`` and ``aiohttp.TCPConnector(ssl=...)``.
        """
        if self.tls_certificate is None:
            return None
        return ssl.create_default_context(cadata=self.tls_certificate)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where the ``/_emulator/...`` admin routes live."""
        return self.base_url.removesuffix("/api")


@contextlib.asynccontextmanager
async def emulator_process(
    *,
    boot_ms: float | None = None,
    boot_jitter_ms: float | None = None,
    tls: bool = False,
    extra_args: Sequence[str] = (),
    log_level: str = "warning",
    start_timeout: float = 20.0,
    stop_timeout: float = 5.0,
) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator in a child process; stop it when the block is left.

    Args:
        boot_ms: ``--boot-ms`` (the emulator's default if ``None``).
        boot_jitter_ms: ``--boot-jitter-ms`` (the emulator's default if ``None``).
        tls: Serve HTTPS and WSS (``--tls``); needs ``cryptography`` in this
            interpreter (else the child exits and this raises).
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
        "--log-level",
        log_level,
    ]
    if boot_ms is not None:
        argv += ["--boot-ms", f"{boot_ms:g}"]
    if boot_jitter_ms is not None:
        argv += ["--boot-jitter-ms", f"{boot_jitter_ms:g}"]
    with tempfile.TemporaryDirectory(prefix="orgo-emulator-") as directory:
        certificate = Path(directory) / "certificate.pem"
        if tls:
            argv += ["--tls", "--tls-cert-out", str(certificate)]
        argv += list(extra_args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                env={**os.environ, _KEY_ENV: api_key},
                # Its own session: a Ctrl-C or a closed terminal reaches the command,
                # whose cleanup (deletes included) runs before it stops the child...
                start_new_session=True,
                # ...and should the command die without cleaning up, so does the child.
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            raise EmulatorStartError(f"could not start {sys.executable}: {exc}") from exc
        log.debug("emulator child started, pid %d", proc.pid)
        try:
            base_url = await _read_announcement(proc, start_timeout)
            log.debug("emulator child %d serves %s", proc.pid, base_url)
            # Written whole before the announcement (the emulator's promise).
            pem = certificate.read_text(encoding="ascii") if tls else None
            yield EmulatorProcess(
                base_url=base_url, api_key=api_key, pid=proc.pid, tls_certificate=pem
            )
        finally:
            await run_shielded(_stop(proc, stop_timeout))


def _die_with_parent() -> Callable[[], None] | None:
    """For the child, before exec: SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG).

    Everything is looked up here, in the parent: between fork and exec the
    child must not import or take locks.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def run() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return run


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
        signal_child(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("emulator child %d ignored SIGTERM for %g s; killing it", proc.pid, timeout)
            signal_child(proc, signal.SIGKILL)
            await proc.wait()
    # 0: a clean stop; -SIGTERM: the signal came before its handler was installed.
    if proc.returncode not in (0, -signal.SIGTERM, None):
        log.warning("emulator child %d exited with status %s", proc.pid, proc.returncode)
