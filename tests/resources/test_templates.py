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
    TestRun,
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
        orgo.templates.delete, orgo.templates.cancel_build, orgo.templates.test_run,
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


# -- test runs ---------------------------------------------------------------------


async def test_test_run_boots_a_preview_that_works_and_stops(
    orgo: Orgo, emulator: Emulator, workspace: Workspace
) -> None:
    emulator.config.template_build_seconds = 0.05
    emulator.config.max_computers = 0  # a preview is not one of the plan's computers
    document = doc("preview") | {"hardware": {"cpu": 2, "ram_gb": 8, "resolution": "800x600x24"}}
    ref = (await orgo.templates.publish(document, auto_build=True)).ref
    await orgo.templates.wait_built(ref, timeout=10)
    run = await orgo.templates.test_run(ref)
    assert isinstance(run, TestRun) and run.status in ("creating", "starting")
    assert run.resolution == "800x600x24" and run.id and run.public_host
    assert run.vnc_password and run.vnc_password not in repr(run)
    # "Connect to it like any computer": it boots, and its desktop answers.
    computer = await orgo.computers.get(run.desktop_id)
    assert (computer.template_ref, computer.cpu, computer.ram) == (ref, 2, 8)
    await orgo.computers.wait_ready(computer, timeout=10)
    shot = await orgo.desktop(computer).screenshot()
    assert (shot.width, shot.height) == (800, 600)
    # Previews are in none of your workspaces.
    listed = await orgo.workspaces.list()
    assert [w.id for w in listed] == [workspace.id] and listed[0].computers == ()
    assert (await orgo.workspaces.get(workspace.id)).computers == ()
    assert await orgo.templates.stop_test_run(run) is True
    with pytest.raises(NotFoundError):
        await orgo.computers.get(run.desktop_id)
    assert await orgo.templates.stop_test_run(run.desktop_id) is False  # already gone


async def test_test_run_of_an_unbuilt_or_unknown_template_answers_as_production(
    orgo: Orgo, emulator: Emulator
) -> None:
    emulator.config.template_build_seconds = 30
    ref = (await orgo.templates.publish(doc("later"))).ref
    with pytest.raises(ConflictError, match="not built"):
        await orgo.templates.test_run(ref)  # never built
    await orgo.templates.build(ref)
    with pytest.raises(ConflictError, match="building"):
        await orgo.templates.test_run(ref)  # still building
    with pytest.raises(NotFoundError):
        await orgo.templates.test_run("default/nothing@1.0.0")
    assert emulator.template_runs.runs == {}


async def test_test_running_stops_the_preview_even_when_the_body_fails(
    orgo: Orgo, emulator: Emulator
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with orgo.templates.test_running("system/claude-code@1.0.0") as run:
            assert run.desktop_id in emulator.template_runs.runs
            raise RuntimeError("boom")
    assert emulator.template_runs.runs == {}
    with pytest.raises(NotFoundError):
        await orgo.computers.get(run.desktop_id)


async def test_stop_test_run_rejects_a_bad_id_before_any_request(
    orgo: Orgo, emulator: Emulator
) -> None:
    before = sum(emulator.counters.requests.values())
    for bad in ("", "a/b", " x"):
        with pytest.raises(ValueError, match="desktop_id"):
            await orgo.templates.stop_test_run(bad)
    assert sum(emulator.counters.requests.values()) == before


async def test_global_versions_lists_a_curated_template(orgo: Orgo, emulator: Emulator) -> None:
    versions = await orgo.templates.global_versions("system", "claude-code")
    assert [v.ref for v in versions] == ["system/claude-code@1.0.0"]
    assert versions[0].version == "1.0.0" and versions[0].digest
    await orgo.templates.publish(doc("mine"))
    with pytest.raises(NotFoundError):  # your own templates are not curated
        await orgo.templates.global_versions("default", "mine")
    before = sum(emulator.counters.requests.values())
    with pytest.raises(ValueError, match="name"):
        await orgo.templates.global_versions("system", "Not A Name")
    assert sum(emulator.counters.requests.values()) == before
