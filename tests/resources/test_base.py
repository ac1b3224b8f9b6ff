"""The resource base: how an answer becomes what a method returns (``cast_to``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orgo_async import Computer, FileInfo, ResponseValidationError, Workspace
from orgo_async._http import Response
from orgo_async.resources._base import cast, path_id


def answer(body: Any, *, raw: bytes | None = None) -> Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return Response(status=200, headers={}, content=content, method="GET", path="/x")


def test_a_model_from_the_body_or_its_key() -> None:
    computer = cast(answer({"id": "c1", "name": "a", "surprise": 1}), Computer)
    assert (computer.id, computer.name) == ("c1", "a")
    info = cast(answer({"file": {"id": "f1", "filename": "x.txt"}}), FileInfo, key="file")
    assert (info.id, info.filename) == ("f1", "x.txt")
    assert cast(answer({"url": "https://x"}), str, key="url") == "https://x"


def test_a_missing_key_names_it() -> None:
    with pytest.raises(ResponseValidationError, match="no 'file' in the answer"):
        cast(answer({"files": []}), FileInfo, key="file")


def test_lists_under_the_first_key_present_or_bare() -> None:
    wrapped = cast(
        answer({"projects": [{"id": "w1"}]}), list[Workspace], keys=("workspaces", "projects")
    )
    bare = cast(answer([{"id": "w2"}]), list[Workspace], keys=("workspaces",))
    assert [w.id for w in wrapped + bare] == ["w1", "w2"]
    with pytest.raises(ResponseValidationError, match="no workspaces list"):
        cast(answer({"other": []}), list[Workspace], keys=("workspaces",))


def test_raw_forms() -> None:
    response = answer(None, raw=b"\x89PNG...")
    assert cast(response, bytes) == b"\x89PNG..."
    assert cast(response, Response) is response
    assert cast(response, None) is None
    assert cast(response, type(None)) is None


def test_a_wrapped_workspace_is_unwrapped_by_the_converter() -> None:
    for key in ("workspace", "project"):
        assert cast(answer({key: {"id": "w9", "name": "n"}}), Workspace).id == "w9"


@pytest.mark.parametrize("bad", ["", " ", ".", "..", "a/b", "x\0y", " pad", 7, None, "z" * 600])
def test_ids_that_could_reach_another_route_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="computer id must"):
        path_id(bad, "computer id")


def test_ids_are_escaped_as_one_segment() -> None:
    assert path_id("a b?c#d", "id") == "a%20b%3Fc%23d"
