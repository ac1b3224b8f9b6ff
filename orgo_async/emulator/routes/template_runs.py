"""Template test-run routes, over :class:`~..template_runs.TemplateRuns`.

- ``POST /templates/run {ref}`` → ``{id, desktop_id, status, vnc_password,
  public_host, resolution}``; 400 without a ``ref`` string, 404 unknown version,
  409 ``template_not_built``;
- ``DELETE /templates/run?id={desktop_id}`` → ``{deleted: true}`` (Orgo does not
  show this answer's body; it is modelled on the template delete's); 400
  without ``id``, 404 ``run_not_found``.
"""

from __future__ import annotations

from aiohttp import web

from ._base import emulator_of, invalid, ok, read_json, text

__all__ = ["start_test_run", "stop_test_run"]


async def start_test_run(request: web.Request) -> web.Response:
    """POST /templates/run."""
    emu = emulator_of(request)
    ref = text(await read_json(request), "ref")
    computer = emu.template_runs.start(ref)
    return ok(emu.template_runs.answer(computer, emu.hostport))


async def stop_test_run(request: web.Request) -> web.Response:
    """DELETE /templates/run?id={desktop_id}."""
    desktop_id = request.query.get("id", "")
    if not desktop_id.strip():
        raise invalid("id is required: the desktop_id of the test run")
    emulator_of(request).template_runs.stop(desktop_id)
    return ok({"deleted": True})
