"""``orgo.templates`` against the emulator: publish, build, logs, reuse, cancel, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orgo_async import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    Orgo,
    TemplateBuildError,
    TemplateBuildTimeout,
    TemplateRef,
    Workspace,
)
from orgo_async.emulator import Emulator, FaultRule


def doc(name: str = "demo", version: str = "1.0.0", run: list[str] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "api_version": "orgo.ai/v1",
        "template": {"name": name, "version": version},
    }
    if run is not None:
        document["build"] = {"run": run}
    return document


async def test_publish_build_logs_ready_and_launch(
    orgo: Orgo, emulator: Emulator, workspace: Workspace
) -> None:
    published = await orgo.templates.publish(doc(run=["echo hi"]))
    assert published.ref == "default/demo@1.0.0" and published.digest
    with pytest.raises(Exception) as unbuilt:
        await orgo.computers.create(workspace_id=workspace.id, name="a", template_ref=published.ref)
    assert isinstance(unbuilt.value, ConflictError)
    started = await orgo.templates.build(published.ref)
    assert started.status == "building" and not started.reused
    events = [e async for e in orgo.templates.build_logs(published.ref)]
    phases = [e.phase for e in events]
    assert phases[0] == "publish" and phases[-1] == "ready"
    assert {"compile", "boot", "install", "snapshot"} <= set(phases)
    assert any(e.line == "$ echo hi" for e in events)
    status = await orgo.templates.wait_built(published.ref, timeout=10)
    assert status.status == "ready" and status.build_time_ms is not None
    computer = await orgo.computers.create(
        workspace_id=workspace.id, name="b", template_ref=published.ref
    )
    assert computer.template_ref == published.ref
    listed = await orgo.templates.list()
    assert [t.ref for t in listed] == [published.ref]
    assert listed[0].template["template"]["name"] == "demo"
    assert [v.version for v in await orgo.templates.versions("default", "demo")] == ["1.0.0"]
    got = await orgo.templates.get(TemplateRef("default", "demo", "1.0.0"))
    assert got.digest == published.digest
    assert {t.ref for t in await orgo.templates.global_list()} >= {"system/claude-code@1.0.0"}
    assert "api_version" in (await orgo.templates.schema())["required"]


async def test_identical_digest_is_reused(orgo: Orgo, emulator: Emulator) -> None:
    emulator.config.template_build_seconds = 0.05
    first = await orgo.templates.publish(doc(version="1.0.0"))
    await orgo.templates.build(first.ref)
    await orgo.templates.wait_built(first.ref, timeout=10)
    # force overwrites in place with the same content: the same digest, built already.
    again = await orgo.templates.publish(doc(version="1.0.0"), force=True)
    assert again.digest == first.digest
    status = await orgo.templates.build(again.ref)
    assert status.status == "ready" and status.reused


async def test_failing_step_fails_the_build_with_its_error(orgo: Orgo) -> None:
    ref = (await orgo.templates.publish(doc(run=["echo ok", "exit 3", "echo never"]))).ref
    await orgo.templates.build(ref)
    events = [e async for e in orgo.templates.build_logs(ref)]
    assert events[-1].level == "error" and "step 2" in events[-1].line
    assert not any("never" in e.line for e in events)
    with pytest.raises(TemplateBuildError, match="step 2") as failed:
        await orgo.templates.wait_built(ref, timeout=10)
    assert failed.value.status == "failed" and "exit 3" in (failed.value.error or "")


async def test_cancel_ends_failed_on_phase_cancel(orgo: Orgo, emulator: Emulator) -> None:
    emulator.config.template_build_seconds = 30
    ref = (await orgo.templates.publish(doc())).ref
    assert await orgo.templates.cancel_build(ref) is False  # nothing building yet
    await orgo.templates.build(ref)
    assert await orgo.templates.cancel_build(ref) is True
    events = [e async for e in orgo.templates.build_logs(ref)]
    assert events[-1].phase == "cancel" and events[-1].terminal
    assert (await orgo.templates.build_status(ref)).status == "failed"
    with pytest.raises(TemplateBuildError, match="cancelled"):
        await orgo.templates.wait_built(ref, timeout=5)


async def test_wait_built_times_out_and_refuses_unbuilt(orgo: Orgo, emulator: Emulator) -> None:
    emulator.config.template_build_seconds = 30
    ref = (await orgo.templates.publish(doc())).ref
    with pytest.raises(TemplateBuildError, match="not built"):
        await orgo.templates.wait_built(ref, timeout=5)
    await orgo.templates.build(ref)
    with pytest.raises(TemplateBuildTimeout):
        await orgo.templates.wait_built(ref, timeout=0.2)


async def test_a_status_poll_cut_short_by_the_deadline_is_a_build_timeout(
    orgo: Orgo, emulator: Emulator
) -> None:
    emulator.config.template_build_seconds = 30
    ref = (await orgo.templates.publish(doc())).ref
    await orgo.templates.build(ref)
    # Every status poll hangs past the deadline: the deadline, not the transport, answers.
    emulator.faults.add(FaultRule(kind="delay", delay=2.0, method="GET", path=r"/build$"))
    with pytest.raises(TemplateBuildTimeout) as raised:
        await orgo.templates.wait_built(ref, timeout=0.3)
    assert raised.value.status == "unknown"
    assert "after 0.3 s" in str(raised.value)


async def test_create_with_unknown_template_answers_404(orgo: Orgo, workspace: Workspace) -> None:
    with pytest.raises(NotFoundError):
        await orgo.computers.create(
            workspace_id=workspace.id, name="x", template_ref="default/nope@1.0.0"
        )


async def test_validate_returns_typed_errors_and_publish_answers_422(orgo: Orgo) -> None:
    bad = {"api_version": "orgo.ai/v1", "template": {"name": "Bad Name", "version": "1"},
           "hardware": {"cpu": 3}}  # fmt: skip
    result = await orgo.templates.validate(bad)
    assert not result.ok
    fields = {e.field: e for e in result.errors}
    assert set(fields) == {"template.name", "template.version", "hardware.cpu"}
    assert fields["hardware.cpu"].code == "invalid_enum" and fields["hardware.cpu"].message
    good = await orgo.templates.validate(doc())
    assert good.ok and good.template is not None and not good.errors
    with pytest.raises(InvalidRequestError) as rejected:
        await orgo.templates.publish(bad)
    assert rejected.value.status == 422 and len(rejected.value.body["errors"]) == 3
    await orgo.templates.publish(doc())
    with pytest.raises(ConflictError):
        await orgo.templates.publish(doc(run=["echo changed"]))


async def test_yaml_text_and_path(orgo: Orgo, tmp_path: Path) -> None:
    text = "api_version: orgo.ai/v1\ntemplate:\n  name: from-yaml\n  version: 2.0.0\n"
    assert (await orgo.templates.publish(text)).ref == "default/from-yaml@2.0.0"
    path = tmp_path / "t.yaml"
    path.write_text(text.replace("2.0.0", "2.0.1"))
    assert (await orgo.templates.publish(path)).ref == "default/from-yaml@2.0.1"
    assert (await orgo.templates.publish(str(path))).ref == "default/from-yaml@2.0.1"


@pytest.mark.parametrize(
    "ref", ["demo@1.0.0", "default/demo", "default/demo@one", "Default/demo@1.0.0", "a/b/c@1.0.0"]
)
async def test_bad_refs_are_rejected_before_any_request(
    orgo: Orgo, emulator: Emulator, ref: str
) -> None:
    before = sum(emulator.counters.requests.values())
    for call in (
        orgo.templates.get, orgo.templates.build, orgo.templates.build_status,
        orgo.templates.delete, orgo.templates.cancel_build,
    ):  # fmt: skip
        with pytest.raises(ValueError, match="ref"):
            await call(ref)
    with pytest.raises(ValueError, match="ref"):
        await orgo.templates.wait_built(ref)
    with pytest.raises(ValueError, match="ref"):
        async for _ in orgo.templates.build_logs(ref):
            pass
    with pytest.raises(ValueError, match="api_version"):
        await orgo.templates.publish({"template": {"name": "x", "version": "1.0.0"}})
    assert sum(emulator.counters.requests.values()) == before


async def test_logs_resume_after_a_dropped_stream_without_duplicates(
    orgo: Orgo, emulator: Emulator
) -> None:
    emulator.config.template_build_seconds = 0.4
    ref = (await orgo.templates.publish(doc(run=["echo a", "echo b"]))).ref
    await orgo.templates.build(ref)
    build = emulator.templates.get("default", "demo", "1.0.0").build
    assert build is not None
    whole_log = [frame for _, frame in build.lines]
    emulator.templates.drop_next_stream(after=3)
    events = [e async for e in orgo.templates.build_logs(ref)]
    assert [e.line for e in events] == [f["line"] for f in whole_log]
    assert len({e.id for e in events}) == len(events)
    route = "GET /api/templates/{namespace}/{name}/{version}/build/events"
    assert emulator.counters.requests[route] == 2


async def test_logs_end_clearly_when_the_stream_breaks_twice(
    orgo: Orgo, emulator: Emulator
) -> None:
    emulator.config.template_build_seconds = 30
    ref = (await orgo.templates.publish(doc())).ref
    await orgo.templates.build(ref)
    emulator.templates.drop_next_stream(after=1)
    seen = []
    with pytest.raises(TemplateBuildError, match="broke twice"):
        async for event in orgo.templates.build_logs(ref):
            seen.append(event.line)
            emulator.templates.drop_next_stream(after=0)
    assert len(seen) == len(set(seen)) >= 1


async def test_launch_fleet_waits_for_the_build(
    orgo: Orgo, emulator: Emulator, workspace: Workspace
) -> None:
    ref = (await orgo.templates.publish(doc())).ref
    await orgo.templates.build(ref)
    result = await orgo.launch_fleet(workspace.id, 2, template_ref=ref, ready_timeout=10)
    assert len(result.ready) == 2 and not result.failures
    broken = (await orgo.templates.publish(doc(name="broken", run=["false"]))).ref
    await orgo.templates.build(broken)
    with pytest.raises(TemplateBuildError):
        await orgo.launch_fleet(workspace.id, 2, template_ref=broken, ready_timeout=10)
    assert len(emulator.state.computers) == 2  # nothing was created for the broken one
