"""Where new legs go: spread a volume's legs over distinct nodes first, then distinct devices,
then the device with the most room left.

Placement works on a :class:`Capacity` that the caller keeps across many volumes (one epoch may
place hundreds of legs), so each choice sees the ones made before it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from spdkvirt.model.records import Device, Volume

#: thin legs may promise this many times a device's size before placement looks elsewhere
THIN_OVERCOMMIT = 4


class NoSpace(Exception):
    """No usable device can take another leg of the volume."""


@dataclass
class Capacity:
    """Bytes promised to legs per device, and the devices placement may use."""

    devices: dict[tuple[str, str], Device]
    committed: dict[tuple[str, str], int]

    @classmethod
    def of(cls, devices: Iterable[Device], volumes: Iterable[Volume], usable_nodes: Collection[str]) -> Capacity:
        usable = {d.key: d for d in devices if d.usable and d.node in usable_nodes}
        committed = dict.fromkeys(usable, 0)
        for v in volumes:
            for leg in (*v.legs, *v.detached):  # a detached copy keeps its lvol
                key = (leg.node, leg.device)
                if key in committed:
                    committed[key] += v.size_bytes
        return cls(usable, committed)

    def room(self, key: tuple[str, str], thin: bool) -> int:
        d = self.devices[key]
        limit = d.size_bytes * (THIN_OVERCOMMIT if thin else 1)
        if not thin and d.free_bytes:
            limit = min(limit, self.committed[key] + d.free_bytes)
        return limit - self.committed[key]

    def choose(
        self,
        size: int,
        thin: bool,
        *,
        avoid_nodes: Collection[str] = (),
        avoid_devices: Collection[tuple[str, str]] = (),
        only_nodes: Collection[str] | None = None,
    ) -> Device:
        """The device for one more leg; raises :class:`NoSpace` when none fits."""
        best: tuple[tuple[int, float, str, str], Device] | None = None
        for key, d in self.devices.items():
            if (only_nodes is not None and d.node not in only_nodes) or key in avoid_devices:
                continue
            room = self.room(key, thin)
            if room < size:
                continue
            load = self.committed[key] / max(d.size_bytes, 1)
            rank = (int(d.node in avoid_nodes), load, d.node, d.device_id)
            if best is None or rank < best[0]:
                best = (rank, d)
        if best is None:
            raise NoSpace(f"no usable device has {size} bytes free for another leg")
        self.committed[best[1].key] += size
        return best[1]
