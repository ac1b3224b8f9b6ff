"""The terminal connector: a PTY shell on the computer, over ``/ws/terminal``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..errors import CommandTimeout, ConnectionClosedError, ConnectorError
from ..protocol import Role
from ..protocol.terminal import (
    CommandResult,
    CommandRun,
    Exit,
    Output,
    Pong,
    TerminalError,
    TerminalProtocol,
    UnknownMessage,
)
from ._connection import Connection
from ._socket import Inbox, Socket

__all__ = ["Terminal"]


class Terminal(Socket[TerminalProtocol]):
    """A shell on the computer.

    Iterate it for output (``str`` chunks, ANSI included); :meth:`send` types,
    :meth:`resize` resizes, :meth:`run` runs one command and returns its output
    and exit code. The iteration ends when the shell exits (:attr:`exit_code`).

    Output waits in a buffer of ``max_buffered`` chunks for the iterator; past
    that the oldest chunks are dropped and counted in :attr:`dropped`, so a
    terminal used only through :meth:`run` never grows without bound.

    After a reconnect the shell is a new one (Orgo's terminal state lives in the
    connection); the window size is restored.
    """

    name = "terminal"

    def __init__(
        self, connection: Connection, *, cols: int = 80, rows: int = 24, max_buffered: int = 4096
    ) -> None:
        self._check_size(cols, rows)
        super().__init__(connection, params={"cols": str(cols), "rows": str(rows)})
        self.cols = cols
        self.rows = rows
        self.exit_code: int | None = None
        """The shell's exit code, once it has exited."""
        self.errors: list[str] = []
        """Error messages the server sent (the socket stays open after them)."""
        self._output: Inbox[str] = Inbox(self, max_buffered)
        self._run_lock = asyncio.Lock()
        self._run: tuple[CommandRun, asyncio.Future[CommandResult]] | None = None

    @staticmethod
    def _check_size(cols: int, rows: int) -> None:
        for label, value in (("cols", cols), ("rows", rows)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
                raise ValueError(f"{label} must be an int from 1 to 10000; got {value!r}")

    # -- public ----------------------------------------------------------------------

    async def send(self, data: str) -> None:
        """Type ``data`` into the shell (``\\r`` is Enter).

        Raises:
            ConnectionClosedError: the terminal is closed for good.
        """
        if not isinstance(data, str):
            raise TypeError(f"data must be a str; got {type(data).__name__}")
        await self._send(lambda core: core.send_input(data))

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the window (the shell sees SIGWINCH)."""
        self._check_size(cols, rows)
        self.cols, self.rows = cols, rows
        # A re-dialled shell starts at the size in the dial's query: keep it current.
        self._link.params.update(cols=str(cols), rows=str(rows))
        await self._send(lambda core: core.send_resize(cols, rows))

    def __aiter__(self) -> AsyncIterator[str]:
        return aiter(self._output)

    @property
    def dropped(self) -> int:
        """Output chunks dropped because nobody iterated them."""
        return self._output.dropped

    async def run(self, command: str, *, timeout: float | None = 60.0) -> CommandResult:
        """Run ``command`` and return what it printed and its exit code.

        The command runs in a subshell of this terminal (``exit 3`` gives exit
        code 3 and leaves the terminal open). Runs on one terminal are
        serialized. Output is ANSI-stripped.

        Raises:
            ValueError: an empty command.
            CommandTimeout: it did not finish in time (it was interrupted with
                Ctrl-C; the output so far is on the error).
            ConnectionClosedError: the terminal dropped or the shell exited meanwhile.
        """
        run = CommandRun(command)
        async with self._run_lock:
            future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
            self._run = (run, future)
            try:
                await self.send(run.input())
                async with asyncio.timeout(timeout):
                    return await future
            except TimeoutError as exc:
                with contextlib.suppress(ConnectorError):
                    await self.send("\x03")  # interrupt it, so the shell is usable again
                raise CommandTimeout(
                    command=command, seconds=timeout, output=run.partial_output()
                ) from exc
            finally:
                self._run = None

    # -- the socket --------------------------------------------------------------------

    def _new_core(self) -> TerminalProtocol:
        return TerminalProtocol(Role.CLIENT)

    def _event(self, event: object) -> None:
        if isinstance(event, Output):
            self._output.put(event.data)
            if self._run is not None:
                run, future = self._run
                result = run.feed(event.data)
                if result is not None and not future.done():
                    future.set_result(result)
        elif isinstance(event, Pong):
            self._pong_received()
        elif isinstance(event, Exit):
            self.exit_code = event.code
            self._fail_run("the shell exited while the command ran")
            self._output.end()
        elif isinstance(event, TerminalError):
            self.errors.append(event.message)
        elif isinstance(event, UnknownMessage):
            pass  # a newer server's message: ignored, as Orgo's clients do

    async def _reopened(self) -> None:
        self._fail_run("the terminal reconnected while the command ran; its result is unknown")

    def _fail_run(self, why: str) -> None:
        if self._run is not None and not self._run[1].done():
            self._run[1].set_exception(ConnectionClosedError(why, socket=self.name))

    def _ended_hook(self, error: BaseException | None) -> None:
        if self._run is not None and not self._run[1].done():
            self._run[1].set_exception(
                error
                if isinstance(error, ConnectorError)
                else ConnectionClosedError("the terminal closed", socket=self.name)
            )
        self._output.wake()
