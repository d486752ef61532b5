"""Where a pool's nodes come from: each provider makes nodes, stops them, and says which still run.

The allocator (`nodes.allocator`) decides how many nodes a pool needs and asks the
pool's provider (Pool.provider) for them; a provider knows nothing of targets. A node
is always a `manage.py worker --pool P --name N` process: on this machine (`local`),
or, in the next provider, inside a Slurm batch job.
"""

from dataclasses import dataclass
from typing import Protocol

from pools.models import ComputeNode, Pool


@dataclass(frozen=True)
class Ended:
    """A node whose process ended, and what it said last."""

    name: str
    message: str


class Provider(Protocol):
    name: str

    def create(self, pool: Pool, nodes: list[ComputeNode]) -> dict[str, str]:
        """Start these nodes (their rows exist, `creating`); {node name: handle} for those started,
        raising nothing: a node that could not start is left out, and `ended` reports it."""

    def remove(self, nodes: list[ComputeNode]) -> None:
        """Stop these nodes' processes (they were asked to leave, or their rows are gone)."""

    def ended(self) -> list[Ended]:
        """The nodes whose processes ended since the last call."""

    def running(self) -> set[str]:
        """The names of the nodes whose processes run."""
