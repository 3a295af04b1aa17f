"""What a fault run must keep: every acknowledged write reads back, no volume accepts writes on
two nodes at once, every volume converges. Pure: it judges histories the runner recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class History:
    """What the hosts saw: per (volume, block) the newest version acknowledged and the newest
    attempted (an unacknowledged write may or may not have landed); probe rounds in which more
    than one node accepted a write for one volume."""

    acked: dict[tuple[str, int], int] = field(default_factory=dict)
    tried: dict[tuple[str, int], int] = field(default_factory=dict)
    writes: int = 0
    double: list[str] = field(default_factory=list)

    def attempt(self, volume: str, block: int, version: int) -> None:
        self.tried[(volume, block)] = max(version, self.tried.get((volume, block), 0))

    def ack(self, volume: str, block: int, version: int) -> None:
        self.writes += 1
        self.acked[(volume, block)] = max(version, self.acked.get((volume, block), 0))

    def probed(self, volume: str, accepted: Iterable[str], at: float) -> None:
        nodes = sorted(set(accepted))
        if len(nodes) > 1:
            self.double.append(f"{at:.2f}s {volume}: writes accepted on {', '.join(nodes)}")


@dataclass(frozen=True)
class Verdict:
    acked_writes: int
    lost: tuple[str, ...]
    double_served: tuple[str, ...]
    unconverged: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.double_served or self.unconverged)


def judge(
    history: History,
    read: Mapping[tuple[str, int], int | str],
    states: Mapping[str, str],
) -> Verdict:
    """``read``: the version read back per (volume, block), or why it could not be read;
    ``states``: each volume's state once faults stopped. A failed volume's blocks are not read
    (its copies are gone: it says so); every other acknowledged block must read back at a version
    at least the one acknowledged and at most the newest attempted."""
    lost = []
    for (volume, block), version in sorted(history.acked.items()):
        if states.get(volume) == "failed":
            continue
        got = read.get((volume, block), "not read")
        if isinstance(got, str):
            lost.append(f"{volume} block {block}: acknowledged version {version}, {got}")
        elif not version <= got <= history.tried.get((volume, block), version):
            lost.append(f"{volume} block {block}: acknowledged version {version}, read {got}")
    unconverged = [f"{v}: {s}" for v, s in sorted(states.items()) if s not in ("online", "failed")]
    return Verdict(history.writes, tuple(lost), tuple(history.double), tuple(unconverged))
