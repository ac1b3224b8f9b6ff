"""A raw REST client for the emulator's tests (plain aiohttp, no SDK), and what its tests share.

:class:`Api` sends requests with the emulator's API key unless told
otherwise; :class:`FakeClock` is a clock a test moves by hand; :class:`Pc` is
a computer as its create call answered it, with the paths of its desktop
actions on the platform route and through the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import aiohttp
import attrs

from orgo_async.emulator import BootTime, Emulator

FAST_BOOT = BootTime.fixed(0.02)
ROUTES = ("platform", "proxy")
HEX8 = re.compile(r"^[0-9a-f]{8}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: Any
    raw: bytes


class Pc:
    """A computer as the create call answered it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.id: str = body["id"]
        self.instance_id: str = body["instance_id"]

    def path(self, route: str, endpoint: str) -> str:
        if route == "proxy":
            return f"/api/desktops/{self.instance_id}/proxy/{endpoint}"
        return f"/api/computers/{self.id}/{endpoint}"


class Api:
    """Raw requests against one emulator, with its API key unless told otherwise."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.auth = {"Authorization": f"Bearer {emu.api_key}"}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        data: Any = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """``headers`` are added to (and may replace) the API key's; ``auth=False`` sends none."""
        url = path if path.startswith("http") else self.emu.origin + path
        async with self.session.request(
            method,
            url,
            json=body,
            params=params,
            data=data,
            headers={**(self.auth if auth else {}), **(headers or {})},
        ) as resp:
            raw = await resp.read()
            payload = await resp.json() if resp.content_type == "application/json" else None
            return Reply(resp.status, payload, resp.headers, raw)

    async def workspace(self, name: str = "ws") -> dict[str, Any]:
        reply = await self.call("POST", "/api/workspaces", {"name": name})
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def computer(self, workspace_id: str, name: str = "c1", **fields: Any) -> dict[str, Any]:
        reply = await self.call(
            "POST", "/api/computers", {"workspace_id": workspace_id, "name": name, **fields}
        )
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def running_pc(self, workspace: dict[str, Any], name: str = "c1", **fields: Any) -> Pc:
        """A new computer of ``workspace``, once it runs."""
        pc = Pc(await self.computer(workspace["id"], name, **fields))
        await self.wait_running(pc.body)
        return pc

    async def health(self, key: str) -> Reply:
        return await self.call("GET", f"/api/desktops/{key}/proxy/health")

    async def wait_running(self, computer: dict[str, Any], timeout: float = 30.0) -> int:
        """Poll health until 200; returns the number of probes.

        ``timeout`` bounds a hang, not a boot time: a real sandboxed desktop (Xvnc,
        openbox, xterm) took over 5 s to boot once in a full CI run on 2 cores.
        """
        probes = 0
        async with asyncio.timeout(timeout):
            while True:
                probes += 1
                if (await self.health(computer["id"])).status == 200:
                    return probes
                await asyncio.sleep(0.003)

    async def act(
        self, pc: Pc, route: str, endpoint: str, body: Any = None, **kwargs: Any
    ) -> Reply:
        method = "GET" if endpoint == "screenshot" else "POST"
        return await self.call(method, pc.path(route, endpoint), body, **kwargs)

    async def shot(self, pc: Pc, route: str = "platform", **params: str) -> tuple[Reply, bytes]:
        """A base64 screenshot and its PNG bytes."""
        query = {"response_format": "base64", **params}
        reply = await self.act(pc, route, "screenshot", params=query)
        assert reply.status == 200, reply.body
        return reply, base64.b64decode(reply.body["image"])

    async def upload(
        self,
        content: bytes,
        filename: str,
        *,
        project: str | None,
        desktop: str | None = None,
        field: str = "projectId",
    ) -> Reply:
        form = aiohttp.FormData()
        form.add_field("file", content, filename=filename, content_type="text/plain")
        if project is not None:
            form.add_field(field, project)
        if desktop is not None:
            form.add_field("desktopId", desktop)
        return await self.call("POST", "/api/files/upload", data=form)


async def running_computer(
    fapi: Api, clock: FakeClock, name: str = "c1", **fields: Any
) -> dict[str, Any]:
    """A new computer on a fake-clock emulator, moved past its 1 s boot."""
    ws = await fapi.workspace(f"ws-{name}")
    computer = await fapi.computer(ws["id"], name, **fields)
    clock.advance(1.0)
    return computer


class SocketApi:
    """The few REST calls the socket tests make: a running computer and its password.

    ``resolution`` is the size computers are created at (``None``: the emulator's).
    """

    resolution: str | None = None

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.auth = {"Authorization": f"Bearer {emu.api_key}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, self.emu.origin + path, json=body, headers=self.auth
        ) as resp:
            return resp.status, await resp.json()

    async def create(self, name: str = "c1", resolution: str | None = None) -> dict[str, Any]:
        status, ws = await self.call("POST", "/api/workspaces", {"name": f"ws-{name}"})
        assert status == 201, ws
        body = {"workspace_id": ws["id"], "name": name}
        if (resolution or self.resolution) is not None:
            body["resolution"] = resolution or self.resolution
        status, computer = await self.call("POST", "/api/computers", body)
        assert status == 201, computer
        result: dict[str, Any] = computer
        return result

    async def wait_running(self, computer: dict[str, Any], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                status, _ = await self.call(
                    "GET", f"/api/desktops/{computer['instance_id']}/proxy/health"
                )
                if status == 200:
                    return
                await asyncio.sleep(0.005)

    async def running(self, name: str = "c1", resolution: str | None = None) -> dict[str, Any]:
        computer = await self.create(name, resolution)
        await self.wait_running(computer)
        return computer

    async def password(self, computer: dict[str, Any]) -> str:
        status, body = await self.call("GET", f"/api/computers/{computer['id']}/vnc-password")
        assert status == 200
        password: str = body["password"]
        return password
