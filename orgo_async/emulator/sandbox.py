"""A sandbox per emulated computer, with bubblewrap: what makes a local computer a computer.

Each computer that runs something (a terminal, a REST ``bash`` or ``exec``, a
real desktop) gets one ``bwrap`` process, started on first use and killed when
the computer stops, restarts or is deleted. Inside it:

- its own PID, IPC and UTS namespaces, and its own network namespace with
  only a loopback interface unless the emulator is configured with
  ``sandbox_network``. Its processes run as ``root``, as on Orgo's VMs, with
  a root that cannot reach past the sandbox: when the emulator runs as root,
  with a reduced capability set (:data:`CAPABILITIES`: no ``CAP_SYS_ADMIN``,
  so no mount, no ``CAP_SYS_PTRACE``, no ``CAP_MKNOD``...); otherwise in a
  user namespace of its own that maps the caller to root (where a
  terminal emulator that changes groups, such as xterm, cannot start);
- the host's ``/usr`` (and the ``/bin``, ``/lib``... links into it) and ``/etc``
  read-only, minus the password hashes and SSH host keys; a fresh ``/dev``,
  ``/proc`` of its own PID namespace, and a private ``/tmp`` (a size-capped
  tmpfs, empty at each boot, like a real reboot);
- the computer's disk at ``/root`` (with ``Desktop/``; ``/home/user`` is a link
  to it, the path Orgo's export documents): the host directory
  :meth:`~.store.Store.workdir` names, kept across a stop or restart and
  removed with the computer;
- ``/run/orgo``: a directory shared with the emulator, through which the
  emulator reaches the computer's ``Xvnc`` (a unix socket), and
  ``/run/orgo-auth`` holding its VNC password file, read-only.

Nothing else of the host is there: not its home, ``/root``, ``/tmp``, the
emulator's files, another computer's disk, nor any other process.

A process enters a running sandbox through ``nsenter`` (util-linux) targeting
the sandbox's first process (:meth:`Sandbox.enter`): it joins all of the
sandbox's namespaces and its root, and runs with the limits of
:data:`RLIMITS`. The sandbox's first process is the PID namespace's init, so
killing it (:meth:`Sandbox.stop`) kills everything that runs in the
sandbox, whoever started it: no ``/proc`` scan, nothing left behind.
``--die-with-parent`` kills it with the emulator.

:func:`sandbox_support` tells whether sandboxes work here (``bwrap`` and
``nsenter`` installed, the kernel allowing user namespaces), once per
program, by starting one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from .._aio import signal_child
from .config import SandboxMode

if TYPE_CHECKING:
    from .store import Computer, Store, Transition

__all__ = [
    "CAPABILITIES",
    "RLIMITS",
    "SANDBOX_HOME",
    "SANDBOX_PATH",
    "SANDBOX_RUN",
    "SANDBOX_RUN_AUTH",
    "START_TIMEOUT",
    "Place",
    "Sandbox",
    "SandboxError",
    "Sandboxes",
    "communicate",
    "read_until",
    "sandbox_env",
    "sandbox_support",
    "which_inside",
]

log = logging.getLogger("orgo_async.emulator")

SANDBOX_HOME: Final = "/root"
"""The computer's home inside its sandbox (Orgo's VMs run as root)."""

SANDBOX_RUN: Final = "/run/orgo"
"""The directory the sandbox shares with the emulator (the Xvnc's socket)."""

SANDBOX_RUN_AUTH: Final = "/run/orgo-auth"
"""The read-only directory holding the computer's VNC password file."""

SANDBOX_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` inside a sandbox: the system's directories (nothing of the host's home)."""

START_TIMEOUT: Final = 10.0
"""Seconds a sandbox may take to start (about 5 ms here)."""

TMP_BYTES: Final = 512 << 20
"""The size cap of a sandbox's ``/tmp`` (a tmpfs: it is memory)."""

CAPABILITIES: Final = (
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "net_bind_service",
    "sys_chroot",
    "audit_write",
)
"""What root may do in a sandbox when the emulator runs as root (Docker's default set,
less ``mknod``, ``net_raw``, ``setfcap`` and ``setpcap``)."""

RLIMITS: Final[Mapping[str, int]] = {
    "core": 0,  # no core dumps on the computer's disk
    "fsize": 4 << 30,  # no single file above 4 GiB
    "nofile": 8192,
}
"""Resource limits of every process entering a sandbox (``prlimit`` names).
Memory and process counts would need cgroups, which are left alone here."""

# Host paths a sandbox never sees, although they are under a directory it does.
_MASKED_FILES: Final = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
_MASKED_DIRS: Final = ("/etc/ssh", "/etc/ssl/private")
_USR_LINKS: Final = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

_support: dict[str, str | None] = {}


class SandboxError(OSError):
    """A sandbox could not be started, or sandboxes do not work on this machine."""


def which_inside(program: str) -> str | None:
    """Where ``program`` is inside a sandbox (the host's system directories), if anywhere."""
    return shutil.which(program, path=SANDBOX_PATH)


def sandbox_env(display: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process in a sandbox: built from scratch, no host secrets."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": SANDBOX_HOME,
        "PWD": SANDBOX_HOME,
        "USER": "root",
        "LOGNAME": "root",
        "LANG": "C.UTF-8",
        "SHELL": which_inside("bash") or "/bin/sh",
    }
    if display is not None:
        env["DISPLAY"] = display
    env.update(extra)
    return env


def _missing_program(bwrap: str) -> str | None:
    for program, package in (
        (bwrap, "bubblewrap"),
        ("nsenter", "util-linux"),
        ("prlimit", "util-linux"),
        ("setpriv", "util-linux"),
    ):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: apt-get install {package})"
    return None


async def sandbox_support(bwrap: str = "bwrap") -> str | None:
    """None when sandboxes work here with ``bwrap``; otherwise why not, in one line.

    Answered once per ``bwrap`` by starting a sandbox and running ``true`` in it.
    """
    key = shutil.which(bwrap) or bwrap  # the program PATH finds now
    if key in _support:
        return _support[key]
    reason = _missing_program(bwrap)
    if reason is None:
        probe_dir = Path(await asyncio.to_thread(_mkdtemp))
        sandbox = Sandbox(probe_dir / "home", probe_dir / "run", name="probe", bwrap=bwrap)
        try:
            await sandbox.start()
            code, output = await sandbox.run(["true"])
            if code != 0:
                reason = f"a process cannot enter a sandbox: {output.strip()[-300:]}"
        except SandboxError as exc:
            reason = str(exc)
        finally:
            await sandbox.stop()
            await asyncio.to_thread(shutil.rmtree, probe_dir, True)
    _support[key] = reason
    return reason


def _mkdtemp() -> str:
    return tempfile.mkdtemp(prefix="orgo-sandbox-probe-")


class Sandbox:
    """One computer's sandbox: a ``bwrap`` process and the namespaces it holds.

    ``home`` (the computer's disk, made if missing) is mounted at ``/root``;
    ``run`` (made, 0700) holds ``shared/`` (``/run/orgo``) and ``auth/``
    (``/run/orgo-auth``, read-only inside). :meth:`start` once, then
    :meth:`enter` or :meth:`run`; :meth:`stop` (idempotent) kills everything
    inside and reaps it.
    """

    def __init__(
        self,
        home: Path,
        run: Path,
        *,
        name: str,
        network: bool = False,
        bwrap: str = "bwrap",
    ) -> None:
        self.home: Final = home
        self.run_dir: Final = run
        self.shared: Final = run / "shared"
        """Host side of ``/run/orgo``."""
        self.auth: Final = run / "auth"
        """Host side of ``/run/orgo-auth`` (read-only inside)."""
        self.name: Final = name
        self.network: Final = network
        self._bwrap = bwrap
        # As root, capabilities are dropped instead: in a user namespace root cannot
        # change groups, which xterm (and other programs that start as root) must.
        self.user_namespace: Final = os.geteuid() != 0
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[None] | None = None
        self._init_pid: int | None = None
        self._pidfd: int | None = None
        self._stop_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "stopped" if self.stopping else "running" if self._init_pid else "new"
        return f"<Sandbox {self.name} {state}>"

    @property
    def init_pid(self) -> int | None:
        """The host pid of the sandbox's init (the PID namespace's process 1)."""
        return self._init_pid

    @property
    def stopping(self) -> bool:
        return self._stop_task is not None

    @property
    def alive(self) -> bool:
        """True while the sandbox runs (started, not stopped, its init not dead)."""
        return (
            self._process is not None
            and self._process.returncode is None
            and self._init_pid is not None
            and not self.stopping
        )

    def _argv(self, info_fd: int) -> tuple[list[str], list[str]]:
        """bwrap's options, and the command it runs (``--`` and after)."""
        argv = [
            "--die-with-parent",
            "--new-session",  # no TIOCSTI into a terminal the sandbox does not own
        ]
        if self.user_namespace:
            argv += ["--unshare-user", "--uid", "0", "--gid", "0"]
        else:
            argv += ["--cap-drop", "ALL"]
            for capability in CAPABILITIES:
                argv += ["--cap-add", f"CAP_{capability.upper()}"]
        argv += [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            self.name,
        ]
        if not self.network:
            argv.append("--unshare-net")
        argv += ["--ro-bind", "/usr", "/usr"]
        for link in _USR_LINKS:
            host = Path("/") / link
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), str(host)]
        argv += ["--ro-bind", "/etc", "/etc"]
        for path in _MASKED_FILES:
            if os.path.lexists(path):
                argv += ["--ro-bind", "/dev/null", path]
        for path in _MASKED_DIRS:
            if os.path.isdir(path):
                argv += ["--tmpfs", path]
        argv += [
            "--proc",
            "/proc",
            # Kernel settings are the host's: read-only (root may not write them here).
            "--ro-bind",
            "/proc/sys",
            "/proc/sys",
            "--ro-bind-try",
            "/proc/sysrq-trigger",
            "/proc/sysrq-trigger",
            "--dev",
            "/dev",
            "--size",
            str(TMP_BYTES),
            "--tmpfs",
            "/tmp",
            "--dir",
            "/var/tmp",
            # The system's font cache: without it each program that draws text
            # would rebuild it (5 s for xterm here).
            "--ro-bind-try",
            "/var/cache/fontconfig",
            "/var/cache/fontconfig",
            "--dir",
            "/var/lib/xkb",
            "--bind",
            str(self.home),
            SANDBOX_HOME,
            "--dir",
            "/home",
            "--symlink",
            SANDBOX_HOME,
            "/home/user",
            "--bind",
            str(self.shared),
            SANDBOX_RUN,
            "--ro-bind",
            str(self.auth),
            SANDBOX_RUN_AUTH,
            "--chdir",
            SANDBOX_HOME,
            "--info-fd",
            str(info_fd),
        ]
        # Says it is up (on its stdout, a pipe) once every mount is in place, then
        # idles until killed.
        return argv, ["--", "/bin/sh", "-c", "echo ready; exec sleep infinity"]

    async def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start the sandbox; return once processes can enter it.

        Cancelling the caller does not interrupt the start itself: a sandbox
        half-started has an init that bwrap's death would not reach, so the
        start runs to its end and :meth:`stop` then kills what it started.

        Raises:
            SandboxError: ``bwrap`` could not start it (the message says why,
                for example a kernel without unprivileged user namespaces).
        """
        if self._starting is not None or self.stopping:
            raise RuntimeError("a Sandbox is started once")
        self._starting = asyncio.get_running_loop().create_task(
            self._start(timeout), name=f"orgo-emulator-start-sandbox-{self.name}"
        )
        # A failure nobody awaited (the caller was cancelled) is not "never retrieved".
        self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(self._starting)

    async def _start(self, timeout: float) -> None:
        for directory in (self.home, self.run_dir, self.shared, self.auth):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info_r, info_w = os.pipe()
        ready_r, ready_w = os.pipe()
        # The options go through a pipe (--args): the sandbox's own `ps` shows its
        # init as "bwrap --args N", not the host paths bound into it.
        args_r, args_w = os.pipe()
        options, command = self._argv(info_w)
        os.write(args_w, b"".join(arg.encode() + b"\0" for arg in options))
        os.close(args_w)
        try:
            self._process = await asyncio.create_subprocess_exec(
                self._bwrap,
                "--args",
                str(args_r),
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=ready_w,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(info_w, args_r),
                env={"PATH": os.environ.get("PATH", os.defpath)},
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (info_r, ready_r):
                os.close(fd)
            raise SandboxError(f"cannot run {self._bwrap}: {exc}") from exc
        finally:
            os.close(info_w)
            os.close(ready_w)
            os.close(args_r)
        try:
            async with asyncio.timeout(timeout):
                ready = await read_until(ready_r, b"\n")
                info = await read_until(info_r, b"}")
        except TimeoutError:
            raise SandboxError(f"the sandbox did not start within {timeout:g} s") from None
        finally:
            os.close(ready_r)
            os.close(info_r)
        if ready != b"ready\n":
            raise SandboxError(f"bwrap failed: {await self._stderr()}")
        try:
            self._init_pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            raise SandboxError("bwrap did not report its child's pid") from None
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(self._init_pid)

    async def _stderr(self) -> str:
        process = self._process
        if process is None or process.stderr is None:
            return "no output"
        try:
            data = await asyncio.wait_for(process.stderr.read(2000), 1.0)
        except TimeoutError:
            data = b""
        text = data.decode(errors="replace").strip().replace("\n", "; ")
        return text or f"exit status {process.returncode}"

    def enter(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside the sandbox, in ``/root``.

        ``argv[0]`` is looked up in the sandbox's ``PATH``. The process joins
        every namespace of the sandbox and its root; it stays a child of the
        caller (``nsenter`` waits for it and exits with its status), so the
        caller's session, pipes and PTY work as for a local process.

        Raises:
            SandboxError: the sandbox is not running.
        """
        if not self.alive or self._init_pid is None:
            raise SandboxError("the computer's sandbox is not running")
        limits = [f"--{name}={value}" for name, value in RLIMITS.items()]
        if self.user_namespace:
            namespaces = ["--user", "--preserve-credentials"]
            privileges = []
        else:
            keep = ",".join(f"+{c}" for c in CAPABILITIES)
            privileges = [
                "setpriv",
                f"--bounding-set=-all,{keep}",
                f"--inh-caps=-all,{keep}",
                "--",
            ]
            namespaces = []
        return [
            "nsenter",
            f"--target={self._init_pid}",
            *namespaces,
            "--mount",
            "--pid",
            "--ipc",
            "--uts",
            "--net",
            "--root",
            "--wd",  # the init's: /root
            "--",
            *privileges,
            "prlimit",
            *limits,
            "--",
            *argv,
        ]

    async def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, str]:
        """Run ``argv`` inside to its end: ``(exit status, stdout and stderr)``.

        Cancelling the caller, or the timeout, kills it.

        Raises:
            SandboxError: the sandbox is not running, or the timeout passed.
        """
        process = await asyncio.create_subprocess_exec(
            *self.enter(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else sandbox_env(),
            start_new_session=True,
        )
        try:
            out, _ = await communicate(process, timeout)
        except TimeoutError:
            raise SandboxError(f"{argv[0]} took longer than {timeout:g} s") from None
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace")

    def stop(self) -> asyncio.Task[None]:
        """Kill everything in the sandbox now; the task reaping ``bwrap`` (idempotent).

        The kill is sent before this returns: no process of the sandbox runs
        on, whoever awaits the task.
        """
        if self._stop_task is None:
            starting = self._starting
            if starting is None or starting.done():
                self._kill()
            self._stop_task = asyncio.get_running_loop().create_task(
                self._reap(), name=f"orgo-emulator-stop-sandbox-{self.name}"
            )
        return self._stop_task

    def _kill(self) -> None:
        # SIGKILL to the PID namespace's init takes every process of the namespace
        # with it (through a pidfd: never another process that reused the pid).
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
            self._pidfd = None
        if self._process is not None:
            signal_child(self._process, signal.SIGKILL)

    async def _reap(self) -> None:
        starting = self._starting
        if starting is not None:
            # Stopped while starting: let the start finish (it is bounded by its
            # timeout), so that the init is known, then kill it. (Killing twice is
            # harmless: the pidfd is gone after the first, bwrap is reaped once.)
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
        self._kill()
        if self._process is not None:
            await self._process.wait()


async def communicate(process: asyncio.subprocess.Process, timeout: float) -> tuple[bytes, bytes]:
    """``process.communicate()`` within ``timeout``; on the timeout (``TimeoutError``)
    or a cancellation, the process's whole session is killed and reaped first.

    A session, not one process: inside a sandbox the program is nsenter's child.
    """
    try:
        return await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.shield(process.wait())
        raise


async def read_until(fd: int, until: bytes, *, limit: int = 65536) -> bytes:
    """Read the pipe ``fd`` (made non-blocking) until ``until`` is seen, EOF, or
    ``limit`` bytes; everything read. The caller closes ``fd``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    buf = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf.extend(chunk)
        if (not chunk or until in buf or len(buf) >= limit) and not done.done():
            done.set_result(bytes(buf))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


# --------------------------------------------------------------------------- per computer


@attrs.frozen
class Place:
    """Where a computer's processes run: in its sandbox, or on the host in its directory.

    :meth:`argv` wraps a command line, :attr:`env` is what to add to (or
    override in) the process's environment, :attr:`cwd` the host directory to
    start it in, :attr:`home` the home directory as the process sees it.
    """

    cwd: Path
    home: str
    sandbox: Sandbox | None = None
    display: str | None = None

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as started from the emulator: entering the sandbox, if any."""
        return list(argv) if self.sandbox is None else self.sandbox.enter(argv)

    @property
    def env(self) -> dict[str, str]:
        """Variables to set: the sandbox's environment, and ``DISPLAY`` when there is a desktop."""
        if self.sandbox is not None:
            return sandbox_env(self.display)
        return {} if self.display is None else {"DISPLAY": self.display}

    @property
    def python(self) -> str:
        """The Python that ``exec`` runs: the system's ``python3`` in a sandbox (the
        emulator's own files are not there), the emulator's own on the host."""
        if self.sandbox is None:
            return sys.executable
        return which_inside("python3") or "python3"


class _Entry:
    def __init__(self, generation: int, task: asyncio.Task[Sandbox]) -> None:
        self.generation = generation
        self.task = task


class Sandboxes:
    """The sandboxes of one store's computers, per boot.

    :meth:`get` starts a computer's sandbox on first use in a boot and
    returns the same one until the computer stops, restarts or is deleted,
    which kills it (synchronously: nothing of it runs once the lifecycle
    listeners have returned). ``mode`` is ``EmulatorConfig.sandbox``:
    ``auto`` uses sandboxes when :func:`sandbox_support` says they work,
    ``on`` requires them, ``off`` never uses them. Call :meth:`resolve` once
    before use and :meth:`shutdown` at the end.
    """

    def __init__(
        self,
        store: Store,
        *,
        mode: SandboxMode = "auto",
        network: bool = False,
        bwrap: str = "bwrap",
    ) -> None:
        self.store = store
        self.mode: Final = mode
        self.network: Final = network
        self.bwrap: Final = bwrap
        self.unavailable: str | None = "not resolved yet" if mode != "off" else "sandbox is off"
        """Why computers run unsandboxed (None: they run in sandboxes)."""
        self._entries: dict[str, _Entry] = {}
        self._adopted: dict[str, Sandbox] = {}
        self._stops: set[asyncio.Task[None]] = set()
        self._root: Path | None = None
        self._seq = 0
        self._closed = False
        store.add_listener(self._on_transition)

    @property
    def enabled(self) -> bool:
        """True when computers run in sandboxes (after :meth:`resolve`)."""
        return self.unavailable is None

    async def resolve(self) -> str | None:
        """Decide whether sandboxes are used; why not, if they are not.

        Raises:
            SandboxError: ``mode`` is ``on`` and sandboxes do not work here.
        """
        if self.mode == "off":
            return self.unavailable
        reason = await sandbox_support(self.bwrap)
        if reason is not None and self.mode == "on":
            raise SandboxError(f"sandbox is on but sandboxes do not work here: {reason}")
        self.unavailable = reason
        return reason

    def run_root(self) -> Path:
        """The private (0700) directory holding every sandbox's ``run`` directory."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="orgo-sandboxes-"))
        return self._root

    def new(self, home: Path, *, name: str) -> Sandbox:
        """A new (not started) sandbox with ``home`` as its disk."""
        self._seq += 1
        return Sandbox(
            home,
            self.run_root() / f"{name}-{self._seq}",
            name=name,
            network=self.network,
            bwrap=self.bwrap,
        )

    def current(self, computer: Computer) -> Sandbox | None:
        """The computer's sandbox of this boot if it is up; None otherwise."""
        entry = self._entries.get(computer.id)
        if entry is None or entry.generation != computer.generation or not entry.task.done():
            return None
        if entry.task.cancelled() or entry.task.exception() is not None:
            return None
        return entry.task.result()

    async def get(self, computer: Computer) -> Sandbox | None:
        """The computer's sandbox for its current boot, started if needed.

        None when sandboxes are not used (see :attr:`unavailable`).

        Raises:
            SandboxError: it could not be started, or the emulator is closing.
        """
        if not self.enabled:
            return None
        if self._closed:
            raise SandboxError("the emulator is closing")
        entry = self._entries.get(computer.id)
        if entry is None or entry.generation != computer.generation:
            self._retire(computer.id)
            sandbox = self._adopted.pop(computer.id, None)
            task = asyncio.get_running_loop().create_task(
                self._start(computer, sandbox),
                name=f"orgo-emulator-sandbox-{computer.instance_id}",
            )
            # A failure nobody awaited must not be reported as "never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            entry = self._entries[computer.id] = _Entry(computer.generation, task)
        return await asyncio.shield(entry.task)

    def adopt(self, computer: Computer, sandbox: Sandbox) -> None:
        """Make a running ``sandbox`` (from the desktop pool) the computer's for this boot."""
        self._retire(computer.id)
        future: asyncio.Future[Sandbox] = asyncio.get_running_loop().create_future()
        future.set_result(sandbox)
        task = asyncio.get_running_loop().create_task(_resolved(future))
        self._entries[computer.id] = _Entry(computer.generation, task)

    async def _start(self, computer: Computer, sandbox: Sandbox | None) -> Sandbox:
        if sandbox is not None:
            return sandbox
        sandbox = self.new(self.store.workdir(computer), name=computer.instance_id)
        try:
            await sandbox.start()
        except BaseException:
            self._track(sandbox.stop())
            raise
        return sandbox

    def _retire(self, computer_id: str) -> None:
        entry = self._entries.pop(computer_id, None)
        if entry is None:
            return
        if entry.task.done():
            if not entry.task.cancelled() and entry.task.exception() is None:
                self._track(entry.task.result().stop())
            return
        entry.task.cancel()  # a start in progress stops what it started
        self._track(asyncio.get_running_loop().create_task(_settle(entry.task)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        if transition in ("stop", "restart", "delete"):
            self._retire(computer.id)

    async def shutdown(self) -> None:
        """Kill every sandbox and wait until each is reaped; later :meth:`get` calls fail."""
        self._closed = True
        for computer_id in list(self._entries):
            self._retire(computer_id)
        while self._stops:
            await asyncio.gather(*self._stops, return_exceptions=True)
        if self._root is not None:
            await asyncio.to_thread(shutil.rmtree, self._root, True)
            self._root = None


async def _resolved(future: asyncio.Future[Sandbox]) -> Sandbox:
    return await future


async def _settle(task: asyncio.Task[Sandbox]) -> None:
    with contextlib.suppress(BaseException):
        await task
