"""``orgo-async terminal``: the computer's shell, interactively, on this terminal.

When stdin is a terminal it is put in raw mode, so every key (Ctrl-C, Ctrl-D,
arrows...) goes to the remote shell as typed; the terminal's mode is restored
when the command ends, however it ends (the shell exits, an error, a signal
turned into an exception). The remote window starts at this terminal's size
and follows it on SIGWINCH.

When stdin is not a terminal it is piped as it is (no raw mode); at its end a
Ctrl-D is sent, so that the remote shell ends as ``bash < script`` would, and
the command waits for that.

The exit code is the remote shell's; the CLI's own failures exit with 255,
as ``ssh``'s do.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

from .._client import Orgo
from ..connect import Terminal
from ..models import Computer
from ._options import add_id
from ._output import log, remote_exit_code
from ._runner import run_command
from ._target import Target, with_computer

__all__ = ["add_terminal", "interact"]

_READ_SIZE: Final = 65536
_EOF: Final = "\x04"
_DEFAULT_SIZE: Final = (80, 24)
_SEND_FAILURE_GRACE: Final = 2.0


def add_terminal(parser: argparse.ArgumentParser) -> None:
    """The ``terminal`` command's options and handler."""
    parser.description = """
        Connect this terminal to the computer's shell: stdin in raw mode (every key goes to the
        remote shell; Ctrl-D at an empty prompt ends it), the window size follows this one, and
        the terminal is restored on exit. Piped stdin is sent as is, then a Ctrl-D. Exits with
        the shell's exit code, or with 255 when the command line itself failed (as ssh does).
    """
    add_id(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    async def run(target: Target, computer: Computer) -> int | None:
        return await interact(
            target.orgo, computer, stdin_fd=sys.stdin.fileno(), stdout=sys.stdout.buffer
        )

    sys.stdout.flush()
    return remote_exit_code(run_command(with_computer(args, run)), command="terminal")


def _window_size(*fds: int) -> tuple[int, int]:
    """``(cols, rows)`` of the first of ``fds`` that is a terminal, else 80x24."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    return _DEFAULT_SIZE


@contextlib.contextmanager
def _raw_mode(fd: int) -> Iterator[None]:
    """Put the terminal ``fd`` in raw mode; restore its exact previous mode on exit."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        # A terminal that hung up (SIGHUP) has no mode left to restore: EIO.
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _Input:
    """Reads stdin without blocking the loop, as decoded text chunks; ``None`` is the end."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._watching = False
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        try:
            self._loop.add_reader(self._fd, self._readable)
            self._watching = True
        except (OSError, ValueError):
            # A regular file or /dev/null cannot be watched; reading it never blocks long.
            self._reader = self._loop.create_task(self._read_in_thread())

    def stop(self) -> None:
        if self._reader is not None and asyncio.current_task() is not self._reader:
            self._reader.cancel()
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    async def get(self) -> str | None:
        return await self._queue.get()

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal went away
            data = b""
        self._push(data)

    async def _read_in_thread(self) -> None:
        while True:
            data = await asyncio.to_thread(os.read, self._fd, _READ_SIZE)
            self._push(data)
            if not data:
                return

    def _push(self, data: bytes) -> None:
        if not data:
            self.stop()
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self._queue.put_nowait(tail)
            self._queue.put_nowait(None)
            return
        text = self._decoder.decode(data)
        if text:
            self._queue.put_nowait(text)


async def _pump_input(term: Terminal, source: _Input, *, raw: bool) -> None:
    while (text := await source.get()) is not None:
        await term.send(text)
    log.debug("stdin ended")
    if not raw:
        # Like the end of `bash < script`: the remote shell reads an end of file.
        await term.send(_EOF)
        return
    # A terminal that went away: nobody is left to type, so stop here.
    raise _StdinClosed


class _StdinClosed(Exception):
    pass


async def _pump_output(term: Terminal, out: BinaryIO) -> None:
    async for chunk in term:
        out.write(chunk.encode("utf-8", "replace"))
        out.flush()


def _on_resize(
    term: Terminal, fds: tuple[int, ...], tasks: set[asyncio.Task[None]]
) -> Callable[[], None]:
    def resize() -> None:
        cols, rows = _window_size(*fds)
        if (cols, rows) == (term.cols, term.rows):
            return
        task = asyncio.get_running_loop().create_task(term.resize(cols, rows))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    return resize


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("resize failed: %s", task.exception())


async def interact(
    orgo: Orgo, computer: Computer, *, stdin_fd: int, stdout: BinaryIO
) -> int | None:
    """Connect stdin and stdout to the computer's terminal until its shell exits.

    Returns:
        The remote shell's exit code; 0 when stdin, a terminal, went away first;
        ``None`` when the terminal closed without telling an exit code.

    Raises:
        ConnectorError: the terminal socket could not be opened, or dropped for good.
    """
    raw = os.isatty(stdin_fd)
    size_fds = (stdin_fd, stdout.fileno())
    cols, rows = _window_size(*size_fds)
    loop = asyncio.get_running_loop()
    resizes: set[asyncio.Task[None]] = set()
    async with orgo.connect(computer).terminal(cols=cols, rows=rows) as term:
        with _raw_mode(stdin_fd) if raw else contextlib.nullcontext():
            source = _Input(stdin_fd)
            source.start()
            loop.add_signal_handler(signal.SIGWINCH, _on_resize(term, size_fds, resizes))
            output = loop.create_task(_pump_output(term, stdout))
            typing = loop.create_task(_pump_input(term, source, raw=raw))
            try:
                await asyncio.wait({output, typing}, return_when=asyncio.FIRST_COMPLETED)
                failure = typing.exception() if typing.done() else None
                if isinstance(failure, _StdinClosed):
                    return 0
                if failure is not None:
                    # A send failed: the output side knows why (the shell exited, the
                    # socket dropped) and ends soon; otherwise report the send's error.
                    await asyncio.wait({output}, timeout=_SEND_FAILURE_GRACE)
                    if not output.done():
                        raise failure
                # The shell exits (after a Ctrl-D at the end of piped input, say).
                await output
            finally:
                loop.remove_signal_handler(signal.SIGWINCH)
                source.stop()
                pending = [output, typing, *resizes]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
    return term.exit_code
