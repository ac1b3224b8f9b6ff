"""Sans-I/O protocol cores: bytes or text in, events and bytes or text out.

Nothing here imports asyncio, aiohttp or websockets, and nothing here owns a
clock: the connectors in :mod:`orgo_async.connect` drive these cores over a
socket, and the emulator drives the same cores in their server role.
"""

from ._base import Role

__all__ = ["Role"]
