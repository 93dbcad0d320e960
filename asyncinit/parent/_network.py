"""The host side of a container's network, driven from the event loop.

Set up at the createRuntime point (the container's netns exists, the workload
has not started) and torn down when the container ends or fails to start.  The
netlink work itself (``asyncinit.network._veth``) is synchronous and runs in a
worker thread, so this works the same on asyncio and trio.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._errors import NetworkError
from ..network._plan import VethPlan
from ..network._veth import HostLinks, delete_veths, setup_veths
from ._workers import cleanup_in_worker, in_worker

if TYPE_CHECKING:
    from ._container import Container


class ContainerNetwork:
    """The veths one container gets, and the host ends it currently owns."""

    def __init__(self, plans: Sequence[VethPlan]) -> None:
        self.plans = tuple(plans)
        self.owned = HostLinks()

    @property
    def host_interfaces(self) -> tuple[str, ...]:
        """The host-end names of the container's veths (generated ones included)."""
        return tuple(plan.host_name for plan in self.plans)

    async def setup(self, container: Container) -> None:
        """Create the veths; raises NetworkError with nothing left behind on failure.

        The worker thread is never abandoned on cancellation: whatever it created
        is in ``owned`` by the time a cancellation is delivered, for teardown.
        """
        try:
            netns_fd = container.open_namespace("net")
        except OSError as exc:  # PID 1 died (killed) before its network existed
            raise NetworkError(
                f"cannot open the container's network namespace: {exc.strerror or exc}",
                field="asyncinit.network",
                errno=exc.errno,
            ) from exc
        try:
            await in_worker("network", setup_veths, self.plans, netns_fd, self.owned)
        finally:
            os.close(netns_fd)

    async def teardown(self) -> list[str]:
        """Delete the host ends (their peers go with them); return the problems.

        Callers shield it: an interface must not outlive its container.
        """
        if not self.owned.links:
            return []
        return await cleanup_in_worker(delete_veths, self.owned)
