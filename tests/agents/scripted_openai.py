"""A scripted OpenAI Responses API for tests: a fixed sequence of raw turns, in the wire format.

:class:`ScriptedResponses` is the package's scripted model
(:class:`orgo_async.emulator.scripted_model.ScriptedModel`) answering
``POST /v1/responses`` with raw output items: each request gets the next
turn's items (``computer_call`` items built with :func:`computer_call`, bad
ones included); once the script is spent, an assistant message saying
``done``. Every request body is kept in :attr:`ScriptedResponses.requests`,
so a test can check what the model was sent (the tools, each screenshot returned).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Self

from orgo_async.emulator.scripted_model import ScriptedModel
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


message = ScriptedModel.message


class ScriptedResponses(ScriptedModel):
    """The scripted Responses API; ``async with`` it, then point a client at :attr:`base_url`."""

    def __init__(self, turns: Sequence[Sequence[Item]]) -> None:
        super().__init__((), final_text="done")
        self.raw_turns = [list(turn) for turn in turns]

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.base_url += "/v1"
        return self

    def responses_output(self, n: int) -> list[Item]:
        return self.raw_turns.pop(0) if self.raw_turns else [message(n + 1, "done")]

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
