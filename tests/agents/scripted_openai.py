"""A scripted OpenAI Responses API for tests: a fixed sequence of turns, in the wire format.

:class:`ScriptedResponses` serves ``POST /v1/responses`` from an aiohttp app
on a free loopback port. Each request is answered with the next turn's
output items (``computer_call`` items built with :func:`computer_call`);
once the script is spent, with an assistant message saying ``done``. Every
request body is kept in :attr:`ScriptedResponses.requests`, so a test can
check what the model was sent (the tools, each screenshot returned).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Self

from aiohttp import web

from orgo_async.protocol.png import DecodedPNG, decode_png

Item = dict[str, Any]


def computer_call(n: int, *actions: dict[str, Any], batched: bool = True) -> Item:
    """A ``computer_call`` output item: GA ``actions`` (or the preview's single ``action``)."""
    item: Item = {
        "type": "computer_call",
        "id": f"cu_{n}",
        "call_id": f"call_{n}",
        "status": "completed",
        "pending_safety_checks": [],
    }
    if batched:
        item["actions"] = list(actions)
    else:
        (item["action"],) = actions
    return item


def message(n: int, text: str) -> Item:
    return {
        "type": "message",
        "id": f"msg_{n}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


class ScriptedResponses:
    """The scripted model server; ``async with`` it, then point a client at :attr:`base_url`."""

    def __init__(self, turns: Sequence[Sequence[Item]]) -> None:
        self.turns = [list(turn) for turn in turns]
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._respond)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        n = len(self.requests)
        output = self.turns.pop(0) if self.turns else [message(n, "done")]
        return web.json_response(
            {
                "id": f"resp_{n}",
                "object": "response",
                "created_at": 0,
                "model": body.get("model", "scripted"),
                "status": "completed",
                "output": output,
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

    def screenshots(self) -> list[DecodedPNG]:
        """The screenshots returned to the model, decoded, in order (each once)."""
        seen: dict[str, DecodedPNG] = {}
        for body in self.requests:
            for item in body.get("input", []):
                if isinstance(item, dict) and item.get("type") == "computer_call_output":
                    url = item["output"]["image_url"]
                    prefix = "data:image/png;base64,"
                    assert url.startswith(prefix), url[:40]
                    if item["call_id"] not in seen:
                        seen[item["call_id"]] = decode_png(base64.b64decode(url[len(prefix) :]))
        return list(seen.values())
