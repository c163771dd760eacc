"""Model rollouts on the device (docs/rollouts.md): download, verify, install beside the
serving version, golden vectors, shadow period, atomic switch, automatic rollback.

A composition root: it drives ``edgemed.load`` (pipeline), the trust checks and the sync
publisher. The fleet's half is ``edgemed.fleet.rollouts``; the messages between them are
``edgemed.delivery``'s.

::

    agent = OtaAgent(OtaConfig(root=..., fleet_url="https://fleet:8080", trust=policy,
                               initial_bundle=...))
    publisher = Publisher(outbox, broker, on_command=agent.on_command)
    agent.attach(publisher)
    with agent, publisher:
        for item in live_inputs:
            publisher.submit(agent(item))   # the serving version's result, always
"""

from __future__ import annotations

from .agent import OtaAgent
from .config import OtaConfig
from .download import Downloader
from .layout import Layout, Pointer, RolloutState
from .shadow import Shadow, agree

__all__ = [
    "Downloader",
    "Layout",
    "OtaAgent",
    "OtaConfig",
    "Pointer",
    "RolloutState",
    "Shadow",
    "agree",
]
