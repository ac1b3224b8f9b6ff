"""A real shell on a real pseudo-terminal, for the emulator's ``/ws/terminal``.

:meth:`Shell.spawn` starts ``bash --norc --noprofile -i`` (``sh -i`` where
there is no bash) as the leader of a new session whose controlling terminal
is the PTY's slave side, so job control, ``Ctrl-C`` (``\\x03``) and
``SIGWINCH`` behave as in a terminal emulator. The emulator keeps the master
side, non-blocking, watched by the event loop:

- output: :meth:`Shell.read` returns everything that arrived since the last
  call, UTF-8 decoded incrementally (invalid bytes become U+FFFD), or None
  once the output has ended;
- input: :meth:`Shell.write` never blocks; what the PTY cannot take yet is
  buffered and written when the master is writable (:meth:`Shell.drain`
  waits while that buffer is large);
- exit: :meth:`Shell.wait` returns the exit code (``128 + signal`` after a
  signal), noticed through a pidfd (no thread, no polling);
- cleanup: :meth:`Shell.terminate` sends SIGHUP (and SIGCONT) to every live
  process of the shell's session, waits a short grace, sends SIGKILL to what
  is left, reaps the shell and closes both descriptors. It is idempotent and
  runs in its own task, so a cancelled caller never leaves a half-killed shell.

Finding a session's processes means scanning ``/proc``, which costs more the
more processes there are: a thousand shells closing at once would scan it
thousands of times. :func:`sessions` scans in a worker thread, never on the
event loop, and one scan answers every caller that asked while it was
queued, so closing many shells costs a few scans. The shell's own process
group is signalled directly (``killpg``) without waiting for any scan, while
the shell is not yet reaped: after that its pid, the group's and session's
id, may be reused, and :func:`members` tells a reused id from a session
that outlived its leader.

The shell's environment is built from scratch (``PATH``, ``HOME``, ``TERM``,
``LANG``, ``PS1``...): nothing of the emulator's own environment, such as an
API key, leaks into it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import fcntl
import getpass
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Final

from .sandbox import Place
from .watch import scan_processes

__all__ = [
    "DEFAULT_GRACE",
    "Shell",
    "ShellError",
    "members",
    "sessions",
    "shell_command",
    "signal_all",
    "user_name",
    "wait_gone",
]

log = logging.getLogger("orgo_async.emulator")

DEFAULT_GRACE: Final = 0.5
"""Seconds between SIGHUP and SIGKILL when a shell is terminated."""

_READ_SIZE: Final = 65536
# Stop reading the PTY while this many decoded characters wait for the socket:
# a shell printing faster than the client reads is slowed down, not buffered forever.
_MAX_PENDING: Final = 1 << 20
_INPUT_HIGH: Final = 1 << 20
# After the shell exits, how long to wait for the PTY to report end of output
# (background jobs may keep it open; the kernel may still be moving the last bytes).
_OUTPUT_LINGER: Final = 0.1
_PS1: Final = r"\u@orgo-desktop:\w\$ "
# termios.IUTF8 only exists from Python 3.13; the Linux value is 0o40000.
_IUTF8: Final[int] = getattr(termios, "IUTF8", 0o40000 if sys.platform == "linux" else 0)

# Used where util-linux `setsid` is missing: become a session leader, take the
# PTY on stdin as controlling terminal, exec the shell.
_CTTY_SCRIPT: Final = (
    "import fcntl, os, sys, termios\n"
    "os.setsid()\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


class ShellError(Exception):
    """The shell could not be started (the socket closes with 4500)."""


@lru_cache(maxsize=1)
def shell_command() -> tuple[str, ...]:
    """The interactive shell to run: bash without rc files, else ``sh -i``."""
    bash = shutil.which("bash")
    if bash is not None:
        return (bash, "--norc", "--noprofile", "-i")
    sh = shutil.which("sh") or "/bin/sh"
    return (sh, "-i")


@lru_cache(maxsize=1)
def _ctty_prefix() -> tuple[str, ...]:
    # `setsid --ctty` (util-linux) does setsid() + TIOCSCTTY and execs, in C. A
    # preexec_fn would do the same but is unsafe in a threaded process.
    setsid = shutil.which("setsid")
    if setsid is not None:
        return (setsid, "--ctty")
    return (sys.executable, "-c", _CTTY_SCRIPT)


def _winsize(cols: int, rows: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


def _exit_code(returncode: int) -> int:
    # Popen reports death by signal N as -N; shells report it as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


class Shell:
    """One interactive shell on its own PTY. Create it with :meth:`spawn`."""

    def __init__(self, popen: subprocess.Popen[bytes], master: int, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._popen = popen
        self._master = master
        self.pid: Final = popen.pid
        """The shell's pid, which is also its session and process-group id."""
        self.name: Final = name
        """The shell's program name (``bash`` or ``sh``), as reported in process events."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []
        self._pending_size = 0
        self._readable = asyncio.Event()
        self._reading = False
        self._output_done = False
        self._linger: asyncio.TimerHandle | None = None
        self._out = bytearray()
        self._writing = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd: int | None = None
        self._poll_handle: asyncio.TimerHandle | None = None
        self._kill_task: asyncio.Task[None] | None = None
        self._released = False

        os.set_blocking(master, False)
        self._resume_reading()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            # No pidfd (old kernel): look for the exit every 50 ms instead.
            self._poll_handle = self._loop.call_later(0.05, self._poll_exit)
        else:
            self._loop.add_reader(self._pidfd, self._check_exit)
            self._check_exit()  # it may have died before the pidfd existed

    # ----------------------------------------------------------------- spawn

    @classmethod
    def spawn(
        cls,
        cwd: Path,
        *,
        cols: int = 80,
        rows: int = 24,
        command: tuple[str, ...] | None = None,
        env: Mapping[str, str] | None = None,
        place: Place | None = None,
    ) -> Shell:
        """Start a shell in ``cwd`` on a new ``cols`` x ``rows`` PTY.

        ``HOME`` is ``cwd``; with a ``place`` the shell runs there (in the
        computer's sandbox, with its home and ``DISPLAY``). ``env`` adds or
        overrides variables. Must be called from the event loop thread.

        Raises:
            ShellError: the PTY or the process could not be created.
        """
        argv = command if command is not None else shell_command()
        name = os.path.basename(argv[0])
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(cwd),
            "PWD": str(cwd),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "SHELL": argv[0],
            "USER": user_name(),
            "LOGNAME": user_name(),
            "PS1": _PS1,
            "HISTFILE": "",  # an empty HISTFILE: history is not written into the computer's dir
        }
        if place is not None:
            environment.update(place.env, HOME=place.home, PWD=place.home)
            if place.sandbox is not None:
                environment.update(USER="root", LOGNAME="root", SHELL=argv[0])
        if env:
            environment.update(env)
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise ShellError(f"cannot open a pseudo-terminal: {exc}") from exc
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, _winsize(cols, rows))
            attrs = termios.tcgetattr(slave)
            attrs[0] |= _IUTF8  # erase whole UTF-8 characters, not bytes
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            popen = subprocess.Popen(
                [*_ctty_prefix(), *(argv if place is None else place.argv(argv))],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=environment,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(master)
            raise ShellError(f"cannot start {name}: {exc}") from exc
        finally:
            # Only the child keeps the slave open, so its exit shows up as EIO here.
            os.close(slave)
        return cls(popen, master, name)

    # ----------------------------------------------------------------- state

    @property
    def returncode(self) -> int | None:
        """The exit code once the shell has been reaped (``128 + N`` for signal N)."""
        if self._exited.done():
            return self._exited.result()
        return None

    @property
    def closed(self) -> bool:
        """True once the descriptors are closed (after :meth:`terminate` completed)."""
        return self._released

    # ----------------------------------------------------------------- output

    async def read(self) -> str | None:
        """The output received since the last call; waits for some. None at the end.

        The output ends when every process holding the PTY has closed it, or
        shortly after the shell exits, or when the shell is terminated.
        """
        while not self._pending:
            if self._output_done:
                return None
            self._readable.clear()
            await self._readable.wait()
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if not self._reading and not self._output_done:
            self._resume_reading()
        return text

    def _resume_reading(self) -> None:
        self._loop.add_reader(self._master, self._on_readable)
        self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._master)
            self._reading = False

    def _on_readable(self) -> None:
        chunks: list[bytes] = []
        ended = False
        # Take what is there now (bounded), so one output message carries it all.
        for _ in range(16):
            try:
                data = os.read(self._master, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                # EIO: no process holds the slave side any more.
                if exc.errno != errno.EIO:
                    log.debug("pty read of shell %d failed: %s", self.pid, exc)
                ended = True
                break
            if not data:
                ended = True
                break
            chunks.append(data)
        if chunks:
            text = self._decoder.decode(b"".join(chunks))
            if text:
                self._pending.append(text)
                self._pending_size += len(text)
                self._readable.set()
        if ended:
            self._end_output()
        elif self._pending_size > _MAX_PENDING:
            self._pause_reading()

    def _end_output(self) -> None:
        if self._output_done:
            return
        self._pause_reading()
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._pending.append(tail)
        self._output_done = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._readable.set()

    def _linger_over(self) -> None:
        self._linger = None
        if not self._output_done and not self._released:
            if self._reading:
                self._on_readable()  # whatever arrived in the meantime
        self._end_output()

    # ----------------------------------------------------------------- input

    def write(self, data: str) -> None:
        """Send keystrokes to the shell; never blocks. Ignored once the shell is gone."""
        if self._released or self._exited.done():
            return
        self._out += data.encode("utf-8", "surrogateescape")
        self._flush()

    async def drain(self) -> None:
        """Wait while more than 1 MiB of input waits for the PTY (returns if the shell ends)."""
        while len(self._out) > _INPUT_HIGH and not self._released and not self._exited.done():
            self._drained.clear()
            await self._drained.wait()

    def _flush(self) -> None:
        while self._out:
            try:
                written = os.write(self._master, self._out)
            except BlockingIOError:
                break
            except OSError:
                self._out.clear()  # EIO: nobody reads the terminal any more
                break
            del self._out[:written]
        if self._out and not self._writing:
            self._loop.add_writer(self._master, self._flush)
            self._writing = True
        elif not self._out and self._writing:
            self._loop.remove_writer(self._master)
            self._writing = False
        if len(self._out) <= _INPUT_HIGH:
            self._drained.set()

    def resize(self, cols: int, rows: int) -> None:
        """Set the window size (the kernel sends SIGWINCH to the foreground job)."""
        if not self._released:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, _winsize(cols, rows))

    # ----------------------------------------------------------------- exit

    def add_exit_callback(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(exit_code)`` once the shell has been reaped."""
        self._exited.add_done_callback(lambda future: callback(future.result()))

    async def wait(self) -> int:
        """Wait for the shell to exit; its exit code (``128 + N`` after signal N)."""
        return await asyncio.shield(self._exited)

    def _check_exit(self) -> None:
        if self._exited.done():
            return
        returncode = self._popen.poll()
        if returncode is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._exited.set_result(_exit_code(returncode))
        self._drained.set()
        if not self._output_done:
            self._linger = self._loop.call_later(_OUTPUT_LINGER, self._linger_over)

    def _poll_exit(self) -> None:
        self._poll_handle = None
        self._check_exit()
        if not self._exited.done():
            self._poll_handle = self._loop.call_later(0.05, self._poll_exit)

    # ----------------------------------------------------------------- cleanup

    def terminate(self, grace: float = DEFAULT_GRACE) -> asyncio.Task[None]:
        """Kill the shell's session and reap it; idempotent.

        SIGHUP + SIGCONT to every live process of the session (``grace=0``
        goes straight to SIGKILL), SIGKILL to what is left after ``grace``
        seconds, then reap the shell and close the descriptors. Returns the
        task doing it (the same task on every call); await it, or
        :meth:`close`, to know it is done.
        """
        if self._kill_task is None:
            self._kill_task = self._loop.create_task(
                self._kill(grace), name=f"orgo-emulator-kill-shell-{self.pid}"
            )
        return self._kill_task

    async def close(self, grace: float = DEFAULT_GRACE) -> None:
        """:meth:`terminate` and wait for it; cancelling the caller does not stop the kill."""
        await asyncio.shield(self.terminate(grace))

    async def _signal_session(self, *signums: int) -> list[int]:
        """Send ``signums`` to the shell's group at once, then to the rest of its session.

        Returns the live processes of the session (the shell's own group
        included), from a shared scan made after the group was signalled.
        """
        reaped = self._exited.done()
        if not reaped:
            # Before `setsid` has run, the shell is not yet its group's leader: both.
            signal_all([self.pid], *signums, group=self.pid)
        found = members(await sessions(), self.pid, leader_reaped=reaped)
        signal_all(found, *signums)
        return found or ([] if reaped else [self.pid])

    async def _kill(self, grace: float) -> None:
        try:
            # Stopped jobs must run to see SIGHUP: SIGCONT after it.
            if grace > 0 and (alive := await self._signal_session(signal.SIGHUP, signal.SIGCONT)):
                deadline = self._loop.time() + grace
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._exited), grace)
                # Jobs that ignore SIGHUP (nohup) get the rest of the grace, then SIGKILL.
                left = deadline - self._loop.time()
                if left > 0:
                    await wait_gone(alive, left)
            await self._signal_session(signal.SIGKILL)
            if not self._exited.done():
                self._check_exit()
            await asyncio.shield(self._exited)
        finally:
            self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self._pause_reading()
        if self._writing:
            self._loop.remove_writer(self._master)
            self._writing = False
        self._out.clear()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._end_output()
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            # Only reached when the kill itself was interrupted: reap without waiting.
            returncode = self._popen.poll()
            if returncode is not None:
                self._exited.set_result(_exit_code(returncode))
        os.close(self._master)
        self._drained.set()


def signal_all(pids: Iterable[int], *signums: int, group: int | None = None) -> None:
    """Send each of ``signums`` to the process group ``group`` (if given), then to ``pids``.

    The group first, in one kernel call: it also reaches a child forked a
    moment ago. Processes already gone (or not ours) are skipped.
    """
    for signum in signums:
        if group is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signum)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


_Sessions = dict[int, list[int]]


class _SessionScans:
    """The ``/proc`` scans of one event loop: in a worker thread, one at a time, shared.

    A caller gets the scan that starts next: it begins after the call, so it
    sees whatever the caller did just before (a kill, a fork). Every caller
    that asks before that scan starts shares it. Idle, it holds nothing of
    the loop (it is kept per loop, weakly).
    """

    def __init__(self) -> None:
        self._next: asyncio.Future[_Sessions] | None = None
        self._last: asyncio.Task[None] | None = None  # the latest scan, until it ends

    def snapshot(self) -> asyncio.Future[_Sessions]:
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            task = loop.create_task(
                self._scan(self._next, self._last), name="orgo-emulator-proc-scan"
            )
            self._last = task
            task.add_done_callback(self._ended)
        return self._next

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._last is task:
            self._last = None

    async def _scan(
        self, future: asyncio.Future[_Sessions], previous: asyncio.Task[None] | None
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait((previous,))  # one scan at a time
            if self._next is future:
                self._next = None  # from now on, callers need a later scan
            result = await asyncio.to_thread(_live_sessions)
        except Exception as exc:
            future.set_exception(exc)
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
        finally:
            if self._next is future:
                self._next = None


_SCANS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SessionScans] = (
    weakref.WeakKeyDictionary()
)


def _live_sessions() -> _Sessions:
    table: _Sessions = {}
    for info in scan_processes().values():
        if info.alive:
            table.setdefault(info.session, []).append(info.pid)
    return table


def members(table: Mapping[int, list[int]], session: int, *, leader_reaped: bool) -> list[int]:
    """The live processes of ``session`` in ``table`` (from :func:`sessions`).

    ``leader_reaped``: the session's leader was reaped before the scan began.
    A live process with the leader's pid then leads a new session (the pid
    was reused: while any process of the old session lived, it could not
    be), so the old one is gone and ``[]`` is returned.
    """
    found = table.get(session, [])
    return [] if leader_reaped and session in found else found


async def sessions() -> Mapping[int, list[int]]:
    """The live (non-zombie) processes of every session, by session id.

    From one ``/proc`` scan in a worker thread that started after this call
    (so it sees what the caller just did), shared with every caller that
    asked before it started. Cancelling the caller does not stop the scan.
    """
    loop = asyncio.get_running_loop()
    scans = _SCANS.get(loop)
    if scans is None:
        scans = _SCANS[loop] = _SessionScans()
    return await asyncio.shield(scans.snapshot())


async def wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until these processes (not necessarily our children) have exited, or timeout.

    A pidfd becomes readable when its process exits, whoever its parent is:
    no polling. Without pidfds, wait out the timeout instead.
    """
    if not pids:
        return
    loop = asyncio.get_running_loop()
    waiters: dict[int, asyncio.Future[None]] = {}
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # already gone
            except (AttributeError, OSError):
                await asyncio.sleep(timeout)
                return
            future: asyncio.Future[None] = loop.create_future()
            waiters[fd] = future
            loop.add_reader(fd, _resolve, future)
        if waiters:
            await asyncio.wait(waiters.values(), timeout=timeout)
    finally:
        for fd in waiters:
            loop.remove_reader(fd)
            os.close(fd)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@lru_cache(maxsize=1)
def user_name() -> str:
    """The emulator's login name, ``USER`` of its shells and commands (``user`` if unknown)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"
