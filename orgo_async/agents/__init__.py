"""Adapters between model computer-use tools and Orgo computers.

* :func:`anthropic_toolset`: the anthropic SDK's computer toolset
  (``computer_toolset_20260801``) served by an Orgo computer, over its live VNC
  connection, its REST desktop actions, or both (needs the ``anthropic``
  extra: ``pip install 'orgo_async[anthropic]'``).
* :func:`openai_computer`: an OpenAI Agents SDK ``AsyncComputer`` on an Orgo
  computer, for its ``ComputerTool`` (needs the ``openai`` extra:
  ``pip install 'orgo_async[openai]'``).
* :func:`run_agent`: a whole agent loop on a computer, through either vendor's
  own loop, bounded by steps and a deadline; it returns an :class:`AgentRun`
  (:mod:`.loop`; the provider's extra is needed when it runs).

Trajectories (:mod:`.trajectory`: a recorder, a reader, and the replay page of
:mod:`.replay`) need nothing beyond the core install.

Importing this package imports no vendor library: each adapter imports its own
the first time one of its names is used, so each extra works alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import LazyExports

if TYPE_CHECKING:
    from ._anthropic import REST_UNSERVED, OrgoComputerToolset, Transport, anthropic_toolset
    from ._openai import OrgoAsyncComputer, openai_computer
    from .loop import AgentRun, run_agent

__all__ = [
    "REST_UNSERVED",
    "AgentRun",
    "OrgoAsyncComputer",
    "OrgoComputerToolset",
    "Transport",
    "anthropic_toolset",
    "openai_computer",
    "run_agent",
]

_MODULE_OF: dict[str, str] = {
    "REST_UNSERVED": "._anthropic",
    "OrgoComputerToolset": "._anthropic",
    "Transport": "._anthropic",
    "anthropic_toolset": "._anthropic",
    "OrgoAsyncComputer": "._openai",
    "openai_computer": "._openai",
    "AgentRun": ".loop",
    "run_agent": ".loop",
}


__getattr__ = LazyExports(__name__, _MODULE_OF)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
