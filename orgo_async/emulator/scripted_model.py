"""A scripted model: the Anthropic Messages and OpenAI Responses APIs, answering from a script.

For offline runs of agent loops (tests, ``examples/agent_fleet.py --emulator``):
a real client pointed at it drives a computer through a fixed sequence of
computer actions, then reads a final text::

    script = [{"action": "left_click", "coordinate": [200, 250]}, {"action": "type", "text": "hi"}]
    async with ScriptedModel(script) as model:
        client = anthropic.AsyncAnthropic(api_key="scripted", base_url=model.base_url)
        openai = AsyncOpenAI(api_key="scripted", base_url=model.base_url + "/v1")

One aiohttp app on 127.0.0.1 (port 0 by default) serves

* ``POST /v1/messages``: each request is answered with the next turn's actions
  as ``tool_use`` blocks of the computer toolset (``toolset_name: "computer"``),
  ``stop_reason: "tool_use"``; once the script is spent, with ``final_text``
  and ``stop_reason: "end_turn"``;
* ``POST /v1/responses``: the same turns as ``computer_call`` items (GA
  ``actions``), then an assistant message holding ``final_text``.

The script is written in the Anthropic computer toolset's vocabulary (``action``
plus that member's input); the OpenAI side translates it (see
:func:`openai_action`). The place in the script is read from each request's
own history (the thread it continues, or the answers it holds so far), so one
server serves any number of conversations at once, each from the start of the
script. ``delay`` stalls every answer (a slow model), ``fail`` answers every
request with that HTTP status in the API's error shape.
Every request body is kept in :attr:`ScriptedModel.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from aiohttp import web

__all__ = ["DEFAULT_SCRIPT", "ScriptedModel", "openai_action"]

Action = Mapping[str, Any]
Item = dict[str, Any]

DEFAULT_SCRIPT: Final[tuple[Action, ...]] = (
    {"action": "screenshot"},
    {"action": "left_click", "coordinate": [200, 250]},
    {"action": "type", "text": "hello from the agent"},
    {"action": "key", "text": "Return"},
)
"""A small task: look, click into the text area, type a line."""

_BUTTONS: Final = {"left_click": "left", "right_click": "right", "middle_click": "wheel"}
_OPENAI_KEYS: Final = {"return": "ENTER", "ctrl": "CTRL", "shift": "SHIFT", "alt": "ALT"}


def openai_action(action: Action) -> Item:
    """One scripted action as an OpenAI Responses computer action.

    Raises:
        ValueError: an action the Responses API's computer tool has no equivalent for.
    """
    name = action.get("action")
    if name == "screenshot":
        return {"type": "screenshot"}
    if name in _BUTTONS:
        x, y = action["coordinate"]
        return {"type": "click", "x": x, "y": y, "button": _BUTTONS[name]}
    if name == "double_click":
        x, y = action["coordinate"]
        return {"type": "double_click", "x": x, "y": y}
    if name == "mouse_move":
        x, y = action["coordinate"]
        return {"type": "move", "x": x, "y": y}
    if name == "type":
        return {"type": "type", "text": action["text"]}
    if name == "key":
        keys = [_OPENAI_KEYS.get(part.lower(), part) for part in str(action["text"]).split("+")]
        return {"type": "keypress", "keys": keys}
    if name == "wait":
        return {"type": "wait"}
    if name == "scroll":
        x, y = action.get("coordinate") or (0, 0)
        amount = int(action.get("scroll_amount", 1)) * 100
        sign = -1 if action.get("scroll_direction") in ("up", "left") else 1
        across = action.get("scroll_direction") in ("left", "right")
        return {
            "type": "scroll",
            "x": x,
            "y": y,
            "scroll_x": sign * amount if across else 0,
            "scroll_y": 0 if across else sign * amount,
        }
    raise ValueError(f"action {name!r} has no OpenAI computer action")


class ScriptedModel:
    """The scripted model server; ``async with`` it, then point clients at :attr:`base_url`.

    Args:
        script: The actions, in the Anthropic computer toolset's vocabulary, one
            a turn; a turn of several actions is a nested sequence.
        final_text: What the model says once the script is spent.
        delay: Seconds each answer is held back.
        fail: An HTTP status every request is answered with (an API error).
        host, port: Where to listen (default: a free loopback port).
    """

    def __init__(
        self,
        script: Sequence[Action | Sequence[Action]] = DEFAULT_SCRIPT,
        *,
        final_text: str = "done",
        delay: float = 0.0,
        fail: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.turns: list[list[Action]] = [
            [step] if isinstance(step, Mapping) else list(step) for step in script
        ]
        self.final_text = final_text
        self.delay = delay
        self.fail = fail
        self.requests: list[dict[str, Any]] = []
        """Every request body, in order (both APIs)."""
        self.base_url = ""
        """``http://127.0.0.1:PORT``: the Anthropic client's base URL; OpenAI's adds ``/v1``."""
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._serial = 0
        self._thread_turns: dict[str, int] = {}  # answer id -> its place in the script

    def __repr__(self) -> str:
        return f"<ScriptedModel {self.base_url or 'not started'} turns={len(self.turns)}>"

    async def __aenter__(self) -> Self:
        self._closing.clear()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/responses", self._responses)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self._host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the two APIs ------------------------------------------------------------------

    async def _turn(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        if self.delay:
            # Held back for ``delay``, or until the server stops (it does not wait for them).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.delay):
                    await self._closing.wait()
        return dict(body)

    async def _messages(self, request: web.Request) -> web.Response:
        body = await self._turn(request)
        # The place in the script is the conversation's: one after the answer its
        # thread continues, else its answers so far.
        thread = body.get("thread")
        previous = thread.get("previous_message_id") if isinstance(thread, dict) else None
        if previous in self._thread_turns:
            n = self._thread_turns[previous] + 1
        else:
            n = sum(1 for m in body.get("messages", ()) if m.get("role") == "assistant")
        self._serial += 1
        message_id = f"msg_{self._serial:04d}"
        self._thread_turns[message_id] = n
        if self.fail is not None:
            error = {"type": "api_error", "message": f"scripted failure {self.fail}"}
            return web.json_response({"type": "error", "error": error}, status=self.fail)
        content: list[Item] = [{"type": "text", "text": f"step {n}"}]
        if n < len(self.turns):
            for i, action in enumerate(self.turns[n]):
                content.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_{n:02d}_{i}",
                        "name": action["action"],
                        "input": {k: v for k, v in action.items() if k != "action"},
                        "toolset_name": "computer",
                    }
                )
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": self.final_text}], "end_turn"
        return web.json_response(
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "scripted"),
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            }
        )

    async def _responses(self, request: web.Request) -> web.Response:
        body = await self._turn(request)
        inputs = body.get("input")
        n = sum(
            1
            for item in (inputs if isinstance(inputs, list) else ())
            if isinstance(item, dict) and item.get("type") == "computer_call_output"
        )
        if self.fail is not None:
            error = {"message": f"scripted failure {self.fail}", "type": "server_error"}
            return web.json_response({"error": error}, status=self.fail)
        return web.json_response(
            {
                "id": f"resp_{n}",
                "object": "response",
                "created_at": 0,
                "model": body.get("model", "scripted"),
                "status": "completed",
                "output": self.responses_output(n),
                "parallel_tool_calls": False,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 1,
                    "output_tokens": 1,
                    "total_tokens": 2,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )

    def responses_output(self, n: int) -> list[Item]:
        """The output items of Responses answer ``n`` (from 0); override to script raw items."""
        if n < len(self.turns):
            actions = [openai_action(action) for action in self.turns[n]]
            return [
                {
                    "type": "computer_call",
                    "id": f"cu_{n}",
                    "call_id": f"call_{n}",
                    "status": "completed",
                    "pending_safety_checks": [],
                    "actions": actions,
                }
            ]
        return [self.message(n, self.final_text)]

    @staticmethod
    def message(n: int, text: str) -> Item:
        """An assistant message output item saying ``text``."""
        return {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
