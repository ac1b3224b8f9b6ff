"""``orgo.billing``: the account's compute limits, and the capacity check before a launch."""

from __future__ import annotations

import logging

from .._checks import check_count
from .._config import Timeouts
from ..errors import CapacityError, NotFoundError
from ..models import ComputeLimits
from ._base import Resource

__all__ = ["Billing"]

log = logging.getLogger("orgo_async")


class Billing(Resource):
    """Account limits; reach it as ``orgo.billing`` (or ``orgo.compute_limits()``)."""

    async def compute_limits(self, *, timeout: Timeouts | float | None = None) -> ComputeLimits:
        """How many computers (and how much memory) the account may use, and uses.

        Raises:
            NotFoundError: the API does not offer compute limits.
        """
        return await self._get("/billing/compute-limits", cast_to=ComputeLimits, timeout=timeout)

    async def check_capacity(
        self, count: int, *, timeout: Timeouts | float | None = None
    ) -> ComputeLimits | None:
        """Fail fast when ``count`` more computers would not fit the account's limits.

        Returns the limits read, or ``None`` when the API offers none (a 404:
        the check is skipped).

        Raises:
            ValueError: ``count`` is not a whole number >= 1.
            CapacityError: fewer than ``count`` computers are free.
        """
        check_count("count", count)
        try:
            limits = await self.compute_limits(timeout=timeout)
        except NotFoundError:
            log.debug("compute limits are not offered by this API: capacity check skipped")
            return None
        free = limits.free
        if free is not None and count > free:
            raise CapacityError(
                requested=count,
                free=free,
                max_computers=limits.max_computers,
                computers_used=limits.computers_used,
            )
        return limits
