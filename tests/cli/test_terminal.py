"""``orgo-async terminal``: driven through a real pseudo-terminal, and with piped stdin."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from .conftest import Server, cli, env, one_error_line


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _Pty:
    """The master side of a pseudo-terminal, read with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while needle not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} within {timeout} s; got {self.seen[-500:]!r}"
            self.pump(min(left, 0.5))
        return self.seen[start:]

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.fd, 65536)
            except OSError:  # EIO: no process has the slave open any more
                time.sleep(0.05)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())


def test_terminal_through_a_pty_runs_commands_and_restores_the_tty() -> None:
    master, slave = os.openpty()
    _set_size(slave, 30, 100)
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgo_async", "--emulator", "terminal", "new"],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env(),
        start_new_session=True,
    )
    pty = _Pty(master)
    try:
        pty.read_until(b"orgo-desktop", timeout=60)  # a prompt: the shell is there
        # Raw mode: the CLI does not echo or translate; only the remote shell does.
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0
        pty.type("echo MARK-$((40+2))\r")
        pty.read_until(b"MARK-42")
        # The remote window started at this terminal's size...
        pty.type("stty size\r")
        pty.read_until(b"30 100")
        # ...and follows it on SIGWINCH.
        _set_size(slave, 40, 120)
        proc.send_signal(signal.SIGWINCH)
        time.sleep(0.3)
        pty.type("stty size\r")
        pty.read_until(b"40 120")
        # Ctrl-C goes to the remote command, not to the CLI.
        pty.type("sleep 30\r")
        time.sleep(0.3)
        pty.type("\x03")
        pty.type("echo AFTER-$((1+1))\r")
        pty.read_until(b"AFTER-2")
        assert proc.poll() is None
        pty.type("\x04")  # Ctrl-D: the remote shell exits, and so does the CLI
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            pty.pump(0.1)
        assert proc.poll() == 0, pty.seen[-500:]
        assert proc.stderr is not None
        errors = proc.stderr.read().decode()
        assert errors == "", errors
        assert termios.tcgetattr(slave) == before  # the tty is restored
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
        os.close(slave)


def test_terminal_pipes_stdin_and_exits_with_the_shell_code() -> None:
    done = cli("--emulator", "terminal", "new", input="echo PIPED-$((2*21))\nexit 5\n")
    assert done.returncode == 5, done.stderr
    assert "PIPED-42" in done.stdout
    assert "Traceback" not in done.stderr


def test_terminal_exits_255_for_its_own_failures(server: Server) -> None:
    # The shell's code passes through, so the CLI's own failures take 255 (like ssh).
    assert "not found" in one_error_line(cli("terminal", "no-such-id", server=server), 255)
    assert "ID" in one_error_line(cli("terminal", server=server), 255)
