"""Template test runs: short-lived preview computers booted from a built template.

``POST /templates/run {ref}`` boots a preview (docs.orgo.ai api-reference/
templates/test-run): 404 for an unknown version, 409 when its build is not
``ready``, as a create with ``template_ref`` answers. The preview is a computer
of the store, so its desktop, sockets and status work like any computer's; it
sits in a workspace of its own that no listing shows and does not count
toward ``max_computers`` (Orgo: previews are outside the plan's computer quota).
Its size is the template's ``hardware`` (``cpu``, ``ram_gb``, ``resolution``).

``DELETE /templates/run?id={desktop_id}`` ends it. Orgo also reaps previews
after a period of inactivity; the emulator does not (nothing here depends on it).

The ids are a reading of the docs: ``desktop_id`` is "the preview's identifier"
that desktop URLs use, so it is the computer's UUID (the emulator's desktop
routes accept it); ``id`` is "the underlying VM id", so it is the instance id.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from .store import Computer, ComputerSpec, Store, Workspace, iso_now, or_404
from .templates import TemplateRegistry, parse_ref

__all__ = ["TemplateRuns"]

_DEFAULT_RESOLUTION: Final = "1280x720x24"
_RESOLUTION: Final = re.compile(r"^\d{2,5}x\d{2,5}x(8|16|24|32)$")


class TemplateRuns:
    """The previews in progress, by ``desktop_id`` (the computer's UUID)."""

    def __init__(self, store: Store, registry: TemplateRegistry) -> None:
        self._store = store
        self._registry = registry
        stamp = iso_now()
        # Not in store.workspaces: previews show in no workspace listing.
        self._workspace = Workspace(
            id=str(uuid.uuid4()),
            name="template-previews",
            user_id=store.user_id,
            status="active",
            icon_url=None,
            created_at=stamp,
            updated_at=stamp,
        )
        self.runs: dict[str, Computer] = {}
        store.add_listener(self._forget)

    def start(self, ref: str) -> Computer:
        """Boot a preview of ``ref``; 400 malformed, 404 unknown, 409 not built."""
        self._registry.require_built(ref)
        version = self._registry.get(*parse_ref(ref))
        hardware = version.document.get("hardware") or {}
        spec = ComputerSpec(
            name=f"preview-{version.name}-{uuid.uuid4().hex[:8]}",
            ram=int(hardware.get("ram_gb", 4)),
            cpu=int(hardware.get("cpu", 1)),
            resolution=_resolution(hardware.get("resolution")),
            template_ref=version.ref,
        )
        computer = self._store.create_computer(self._workspace, spec, plan_limit=False)
        self.runs[computer.id] = computer
        return computer

    def stop(self, desktop_id: str) -> None:
        """End a preview; 404 ``run_not_found`` when there is none by that id."""
        computer = or_404(self.runs.get(desktop_id), "run_not_found", f"No test run {desktop_id}")
        self._store.delete_computer(computer)  # _forget drops it from runs

    def answer(self, computer: Computer, origin_host: str) -> dict[str, Any]:
        """The answer: ``{id, desktop_id, status, vnc_password, public_host, resolution}``."""
        return {
            "id": computer.instance_id,
            "desktop_id": computer.id,
            "status": computer.status_at(self._store.now()),
            "vnc_password": computer.vnc_password,
            "public_host": origin_host,
            "resolution": computer.resolution,
            "template_ref": computer.template_ref,
            "created_at": computer.created_at,
        }

    def _forget(self, computer: Computer, transition: str) -> None:
        if transition == "delete":
            self.runs.pop(computer.id, None)


def _resolution(value: object) -> str:
    """The template's ``hardware.resolution`` when it reads ``WxHxD``, else the default."""
    if isinstance(value, str) and _RESOLUTION.match(value):
        return value
    return _DEFAULT_RESOLUTION
