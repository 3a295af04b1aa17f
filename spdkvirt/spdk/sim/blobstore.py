"""The blobstore under an lvstore: cluster and metadata-page accounting, blobs, on-disk metadata.

The accounting follows SPDK's blobstore: the metadata region at the start of the device
(super block, masks and one metadata page per cluster by default) is rounded up to whole
clusters, clusters and metadata pages are taken lowest-free first, a blob's id is the
metadata page it lives in and every 512 clusters of a blob need one extent page.

What is kept on the device is this module's own format, not SPDK's: a header block at
offset 0 that points at one of two metadata slots, each holding the whole blobstore as
compressed JSON with a CRC. A slot is written before the header that points at it, so a
crash at any moment leaves the previous state readable, and anything that overwrites the
first block (a wipe, a raid superblock) erases the lvstore, as in SPDK.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 4096
EXTENTS_PER_EP = 512
MASK_HEADER = 5  # sizeof(struct spdk_bs_md_mask): u8 type + u32 length, packed
MD_RATIO_DEFAULT = 100

MAGIC = b"SPDKSIMB"
VERSION = 1
HEADER = struct.Struct("<8sIQQII")  # magic, version, slot offset, seq, length, payload crc
HEADER_CRC = struct.Struct("<I")

Reader = Callable[[int, int], Awaitable[bytes]]
Writer = Callable[[int, bytes], Awaitable[None]]


class BlobstoreError(Exception):
    """A blobstore operation failed with -errno."""

    def __init__(self, errno_value: int) -> None:
        super().__init__(errno_value)
        self.errno = errno_value


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _mask_pages(bits: int, page: int) -> int:
    return _ceil(MASK_HEADER + _ceil(bits, 8), page)


@dataclass(frozen=True)
class Layout:
    """Where the metadata region ends and how far the store can grow (spdk_bs_init)."""

    md_len: int  # metadata pages for blobs
    md_pages: int  # all metadata pages, super block and masks included
    md_clusters: int
    max_mask_len: int  # pages reserved for the used-cluster mask

    @staticmethod
    def compute(total_clusters: int, cluster_size: int, md_page_size: int, md_len: int) -> Layout:
        page_mask = _mask_pages(md_len, md_page_size)
        cluster_mask = _mask_pages(total_clusters, md_page_size)
        max_mask = max(_mask_pages(md_len, md_page_size), cluster_mask)
        blobid_mask = _mask_pages(md_len, md_page_size)
        md_pages = 1 + page_mask + max_mask + blobid_mask + md_len
        pages_per_cluster = cluster_size // md_page_size
        return Layout(md_len, md_pages, _ceil(md_pages, pages_per_cluster), max_mask)


@dataclass
class Blob:
    """One blob: an lvol, a snapshot or a clone."""

    id: int
    name: str
    uuid: str
    num_clusters: int
    clusters: list[int]  # per blob cluster: device cluster index, 0 = not allocated
    extent_pages: list[int]  # per 512 clusters: metadata page, 0 = none yet
    thin: bool
    read_only: bool = False
    parent: int | None = None  # the snapshot blob it is a clone of
    clear_method: str = "default"
    clone_seq: int = 0  # order among its parent's clones
    esnap: str | None = None  # the external snapshot's bdev uuid (an esnap clone has no parent)

    @property
    def allocated(self) -> int:
        return sum(1 for c in self.clusters[: self.num_clusters] if c)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "uuid": self.uuid,
            "n": self.num_clusters,
            "c": _rle(self.clusters[: self.num_clusters]),
            "ep": list(self.extent_pages),
            "thin": self.thin,
            "ro": self.read_only,
            "parent": self.parent,
            "clear": self.clear_method,
            "esnap": self.esnap,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Blob:
        n = int(d["n"])
        clusters = _unrle(d["c"])
        clusters += [0] * (n - len(clusters))
        return Blob(
            id=int(d["id"]),
            name=str(d["name"]),
            uuid=str(d["uuid"]),
            num_clusters=n,
            clusters=clusters[:n],
            extent_pages=[int(x) for x in d["ep"]],
            thin=bool(d["thin"]),
            read_only=bool(d["ro"]),
            parent=None if d["parent"] is None else int(d["parent"]),
            clear_method=str(d.get("clear", "default")),
            clone_seq=int(d["id"]),
            esnap=None if d.get("esnap") is None else str(d["esnap"]),
        )


def _rle(values: list[int]) -> list[list[int]]:
    """[5, 6, 7, 0, 0, 9] -> [[5, 3], [0, 2], [9, 1]]: runs of consecutive clusters or zeros."""
    runs: list[list[int]] = []
    for v in values:
        if runs:
            start, count = runs[-1]
            if (v == 0 and start == 0) or (v != 0 and start != 0 and v == start + count):
                runs[-1][1] += 1
                continue
        runs.append([v, 1])
    return runs


def _unrle(runs: list[list[int]]) -> list[int]:
    out: list[int] = []
    for start, count in runs:
        out.extend([0] * count if start == 0 else range(start, start + count))
    return out


@dataclass
class Blobstore:
    """Accounting and metadata of one blobstore (the lvstore's super blob holds uuid and name)."""

    uuid: str
    name: str
    cluster_size: int
    io_unit_size: int
    md_page_size: int
    size: int  # bytes of the device the store covers (grows with grow_lvstore)
    layout: Layout
    blobs: dict[int, Blob] = field(default_factory=dict)
    super_blob: int = 0
    seq: int = 0
    clone_counter: int = 1 << 40
    snapshots: set[int] = field(default_factory=set)  # bs->snapshots: blobs that have had a clone
    used_clusters: bytearray = field(default_factory=bytearray)
    used_md: bytearray = field(default_factory=bytearray)
    low_cluster: int = 0  # every cluster below this one is in use

    # ---- creation -------------------------------------------------------------------------
    @staticmethod
    def create(
        uuid: str,
        name: str,
        dev_size: int,
        block_size: int,
        cluster_size: int,
        md_page_size: int,
        md_ratio: int,
    ) -> Blobstore:
        """spdk_bs_init's checks and layout; raises BlobstoreError(-errno)."""
        total = dev_size // block_size // (cluster_size // block_size)
        md_len = md_ratio * total // 100
        if md_len == 0 or cluster_size % PAGE_SIZE:
            raise BlobstoreError(-22)
        if dev_size < cluster_size:
            raise BlobstoreError(-28)
        page = max(block_size, PAGE_SIZE, md_page_size)
        if cluster_size < page:
            raise BlobstoreError(-22)
        layout = Layout.compute(total, cluster_size, page, md_len)
        if layout.md_clusters > total:
            raise BlobstoreError(-12)
        bs = Blobstore(uuid, name, cluster_size, block_size, page, dev_size, layout)
        bs._reset_maps()
        bs.used_md[0] = 1  # the super blob
        return bs

    def _reset_maps(self) -> None:
        self.low_cluster = 0
        self.used_clusters = bytearray(self.total_clusters)
        for i in range(min(self.layout.md_clusters, self.total_clusters)):
            self.used_clusters[i] = 1
        self.used_md = bytearray(self.layout.md_len)

    def _rebuild_maps(self) -> None:
        self._reset_maps()
        self.used_md[self.super_blob] = 1
        for blob in self.blobs.values():
            self.used_md[blob.id] = 1
            for ep in blob.extent_pages:
                if ep:
                    self.used_md[ep] = 1
            for c in blob.clusters[: blob.num_clusters]:
                if c:
                    self.used_clusters[c] = 1

    # ---- accounting -----------------------------------------------------------------------
    @property
    def total_clusters(self) -> int:
        return self.size // self.cluster_size

    @property
    def total_data_clusters(self) -> int:
        return self.total_clusters - self.layout.md_clusters

    @property
    def free_clusters(self) -> int:
        return self.total_clusters - sum(self.used_clusters)

    @property
    def max_growable_size(self) -> int:
        clusters = (self.layout.max_mask_len * self.md_page_size - MASK_HEADER) * 8
        return clusters * self.cluster_size

    @property
    def md_bytes(self) -> int:
        return self.layout.md_clusters * self.cluster_size

    def _free_md_page(self, start: int = 0) -> int:
        idx = self.used_md.find(0, start)
        if idx < 0:
            raise BlobstoreError(-28)
        return idx

    def _take_md_page(self) -> int:
        """Mark the lowest free metadata page used for a new blob; -ENOMEM when there is none."""
        try:
            page = self._free_md_page()
        except BlobstoreError as e:
            raise BlobstoreError(-12) from e
        self.used_md[page] = 1
        return page

    def _claim_cluster(self) -> int:
        idx = self.used_clusters.find(0, self.low_cluster)
        if idx < 0:
            raise BlobstoreError(-28)
        self.used_clusters[idx] = 1
        self.low_cluster = idx + 1
        return idx

    def _release_cluster(self, cluster: int) -> None:
        self.used_clusters[cluster] = 0
        self.low_cluster = min(self.low_cluster, cluster)

    def allocate_cluster(self, blob: Blob, index: int) -> int:
        """Give blob cluster `index` a device cluster (and its extent page when new)."""
        cluster = self._claim_cluster()
        ep_index = index // EXTENTS_PER_EP
        while len(blob.extent_pages) <= ep_index:
            blob.extent_pages.append(0)
        if blob.extent_pages[ep_index] == 0:
            try:
                page = self._free_md_page(1)
            except BlobstoreError:
                self._release_cluster(cluster)
                raise
            self.used_md[page] = 1
            blob.extent_pages[ep_index] = page
        blob.clusters[index] = cluster
        return cluster

    def _release(self, clusters: list[int], pages: list[int]) -> None:
        for c in clusters:
            if c:
                self._release_cluster(c)
        for p in pages:
            if p:
                self.used_md[p] = 0

    # ---- blobs ----------------------------------------------------------------------------
    def next_clone_seq(self) -> int:
        self.clone_counter += 1
        return self.clone_counter

    def create_blob(self, name: str, uuid: str, num_clusters: int, thin: bool, clear_method: str) -> Blob:
        """spdk_bs_create_blob_ext: lowest free metadata page, thick blobs get their clusters."""
        if not thin:
            if num_clusters > self.free_clusters:
                raise BlobstoreError(-28)
            needed_eps = _ceil(num_clusters, EXTENTS_PER_EP)
            free_pages = self.used_md.count(0)
            if needed_eps + 1 > free_pages:
                raise BlobstoreError(-28)
        page = self._take_md_page()
        blob = Blob(
            page,
            name,
            uuid,
            num_clusters,
            [0] * num_clusters,
            [0] * _ceil(num_clusters, EXTENTS_PER_EP),
            thin,
            clear_method=clear_method,
        )
        if not thin:
            for i in range(num_clusters):
                self.allocate_cluster(blob, i)
        self.blobs[page] = blob
        return blob

    def resize(self, blob: Blob, num_clusters: int) -> None:
        """spdk_blob_resize + sync: grow (thick: allocate) or shrink (free what is cut off)."""
        if blob.read_only:
            raise BlobstoreError(-1)
        old = blob.num_clusters
        if num_clusters == old:
            return
        if num_clusters > old:
            if not blob.thin:
                if num_clusters - old > self.free_clusters:
                    raise BlobstoreError(-28)
                need = _ceil(num_clusters, EXTENTS_PER_EP) - _ceil(old, EXTENTS_PER_EP)
                if need > self.used_md.count(0):
                    raise BlobstoreError(-28)
            blob.clusters += [0] * (num_clusters - old)
            blob.extent_pages += [0] * (_ceil(num_clusters, EXTENTS_PER_EP) - len(blob.extent_pages))
            blob.num_clusters = num_clusters
            if not blob.thin:
                for i in range(old, num_clusters):
                    self.allocate_cluster(blob, i)
            return
        cut = blob.clusters[num_clusters:]
        keep_eps = _ceil(num_clusters, EXTENTS_PER_EP)
        cut_pages = blob.extent_pages[keep_eps:]
        blob.clusters = blob.clusters[:num_clusters]
        blob.extent_pages = blob.extent_pages[:keep_eps]
        blob.num_clusters = num_clusters
        self._release(cut, cut_pages)

    def clones_of(self, blob_id: int) -> list[Blob]:
        found = [b for b in self.blobs.values() if b.parent == blob_id]
        return sorted(found, key=lambda b: b.clone_seq)

    def is_snapshot(self, blob: Blob) -> bool:
        """spdk_blob_is_snapshot: the blob got a clone since the store was loaded (it stays a
        snapshot when its clones go away, until it is deleted or the store is loaded again)."""
        return blob.id in self.snapshots

    def _link(self, blob: Blob, parent: int | None) -> None:
        """bs_blob_list_remove + bs_blob_list_add: blob becomes the last clone of `parent`."""
        blob.parent = parent
        blob.esnap = None
        blob.clone_seq = self.next_clone_seq()
        if parent is not None:
            self.snapshots.add(parent)

    def set_parent(self, blob: Blob, snapshot_id: int) -> None:
        """spdk_bs_blob_set_parent, checks in SPDK's order. The id is looked up in this store,
        whichever lvstore the snapshot came from."""
        if snapshot_id == blob.id:
            raise BlobstoreError(-22)
        if blob.parent == snapshot_id:
            raise BlobstoreError(-17)
        if not blob.thin:
            raise BlobstoreError(-22)
        snap = self.blobs.get(snapshot_id)
        if snap is None:
            raise BlobstoreError(-2)
        if not self.is_snapshot(snap) or snap.num_clusters != blob.num_clusters:
            raise BlobstoreError(-22)
        self._link(blob, snap.id)

    def set_external_parent(self, blob: Blob, esnap_id: str, esnap_size: int) -> None:
        """spdk_bs_blob_set_external_parent: blob (thin) becomes an esnap clone of esnap_id."""
        if esnap_size % self.cluster_size:
            raise BlobstoreError(-22)
        if blob.esnap == esnap_id:
            raise BlobstoreError(-17)
        if not blob.thin:
            raise BlobstoreError(-22)
        self._link(blob, None)
        blob.esnap = esnap_id

    def snapshot(self, orig: Blob, name: str, uuid: str) -> Blob:
        """spdk_bs_create_snapshot: the new blob takes the clusters, orig becomes its thin clone."""
        if orig.read_only:
            raise BlobstoreError(-22)
        page = self._take_md_page()
        snap = Blob(
            page,
            name,
            uuid,
            orig.num_clusters,
            orig.clusters,
            orig.extent_pages,
            orig.thin,
            read_only=True,
            parent=orig.parent,
            clear_method=orig.clear_method,
            clone_seq=self.next_clone_seq(),
            esnap=orig.esnap,
        )
        orig.clusters = [0] * orig.num_clusters
        orig.extent_pages = [0] * len(snap.extent_pages)
        orig.thin = True
        self._link(orig, snap.id)
        self.blobs[page] = snap
        return snap

    def clone(self, snap: Blob, name: str, uuid: str) -> Blob:
        """spdk_bs_create_clone: a thin blob over a read-only one."""
        if not snap.read_only:
            raise BlobstoreError(-22)
        page = self._take_md_page()
        blob = Blob(
            page,
            name,
            uuid,
            snap.num_clusters,
            [0] * snap.num_clusters,
            [0] * _ceil(snap.num_clusters, EXTENTS_PER_EP),
            True,
            parent=snap.id,
            clear_method=snap.clear_method,
            clone_seq=self.next_clone_seq(),
        )
        self.snapshots.add(snap.id)
        self.blobs[page] = blob
        return blob

    def delete(self, blob: Blob) -> None:
        """spdk_bs_delete_blob; a snapshot with one clone hands its clusters to that clone."""
        clones = self.clones_of(blob.id)
        if len(clones) > 1:
            raise BlobstoreError(-16)
        if clones:
            clone = clones[0]
            for i in range(min(blob.num_clusters, clone.num_clusters)):
                if clone.clusters[i] == 0 and blob.clusters[i]:
                    clone.clusters[i] = blob.clusters[i]
                    blob.clusters[i] = 0
            for i in range(min(len(blob.extent_pages), len(clone.extent_pages))):
                if clone.extent_pages[i] == 0 and blob.extent_pages[i]:
                    clone.extent_pages[i] = blob.extent_pages[i]
                    blob.extent_pages[i] = 0
            self._link(clone, blob.parent)
            clone.esnap = blob.esnap
        self.snapshots.discard(blob.id)
        del self.blobs[blob.id]
        self._release(blob.clusters, [blob.id, *blob.extent_pages])

    def clusters_to_fill(self, blob: Blob, allocate_all: bool) -> list[int]:
        """Which clusters inflate (allocate_all) or decouple_parent would allocate; an esnap
        clone always allocates them all."""
        allocate_all = allocate_all or blob.esnap is not None
        parent = self.blobs.get(blob.parent) if blob.parent is not None else None
        out = []
        for i in range(blob.num_clusters):
            if blob.clusters[i]:
                continue
            if parent is None:
                if allocate_all:
                    out.append(i)
            elif allocate_all or (i < parent.num_clusters and parent.clusters[i]):
                out.append(i)
        return out

    def inflated(self, blob: Blob, allocate_all: bool) -> None:
        """bs_inflate_blob_done, once the clusters are copied: inflate (and decoupling an esnap
        clone) makes the blob thick and parentless, decouple_parent moves it up one level. A
        parent that is itself an esnap clone fails that move with -ENOENT (SPDK opens the
        external-snapshot id as a blob), the copied clusters staying."""
        if allocate_all or blob.esnap is not None:
            blob.thin = False
            blob.parent = None
            blob.esnap = None
            return
        parent = self.blobs.get(blob.parent) if blob.parent is not None else None
        if parent is not None and parent.esnap is not None:
            raise BlobstoreError(-2)
        self._link(blob, parent.parent if parent is not None else None)

    # ---- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "cluster_size": self.cluster_size,
            "io_unit_size": self.io_unit_size,
            "md_page_size": self.md_page_size,
            "size": self.size,
            "md_len": self.layout.md_len,
            "md_pages": self.layout.md_pages,
            "md_clusters": self.layout.md_clusters,
            "max_mask_len": self.layout.max_mask_len,
            "super_blob": self.super_blob,
            "blobs": [b.to_json() for b in sorted(self.blobs.values(), key=lambda b: b.id)],
        }

    @staticmethod
    def from_json(d: dict[str, Any], seq: int) -> Blobstore:
        layout = Layout(int(d["md_len"]), int(d["md_pages"]), int(d["md_clusters"]), int(d["max_mask_len"]))
        bs = Blobstore(
            str(d["uuid"]),
            str(d["name"]),
            int(d["cluster_size"]),
            int(d["io_unit_size"]),
            int(d["md_page_size"]),
            int(d["size"]),
            layout,
            super_blob=int(d["super_blob"]),
            seq=seq,
        )
        for bd in d["blobs"]:
            blob = Blob.from_json(bd)
            bs.blobs[blob.id] = blob
        bs.snapshots = {b.parent for b in bs.blobs.values() if b.parent is not None}
        bs._rebuild_maps()
        return bs

    def _slot(self, index: int) -> tuple[int, int]:
        """(offset, size) of metadata slot 0 or 1 inside the metadata region."""
        page = self.md_page_size
        size = (self.md_bytes - page) // 2 // page * page
        return page + index * size, size

    async def persist(self, write: Writer) -> None:
        """Write the whole state into the other slot, then point the header at it."""
        payload = zlib.compress(json.dumps(self.to_json(), separators=(",", ":")).encode())
        seq = self.seq + 1
        slot = seq % 2
        offset, size = self._slot(slot)
        if len(payload) > size:
            raise BlobstoreError(-28)
        padded = payload + bytes(-len(payload) % self.io_unit_size)
        await write(offset, padded)
        await write(0, self._header(offset, seq, payload))
        self.seq = seq

    def _header(self, offset: int, seq: int, payload: bytes) -> bytes:
        head = HEADER.pack(MAGIC, VERSION, offset, seq, len(payload), zlib.crc32(payload))
        head += HEADER_CRC.pack(zlib.crc32(head))
        return head + bytes(self.md_page_size - len(head))

    async def erase(self, write: Writer) -> None:
        """spdk_bs_destroy: the store is gone for any later examine."""
        await write(0, bytes(self.md_page_size))

    @staticmethod
    async def load(read: Reader, dev_size: int, block_size: int) -> Blobstore | None:
        """Read the store from a device, or None when there is none (or it is damaged)."""
        first = max(PAGE_SIZE, block_size)
        if dev_size < first:
            return None
        head = await read(0, first)
        if head[:8] != MAGIC:
            return None
        fields = head[: HEADER.size]
        (crc,) = HEADER_CRC.unpack_from(head, HEADER.size)
        if zlib.crc32(fields) != crc:
            return None
        _magic, version, offset, seq, length, payload_crc = HEADER.unpack(fields)
        if version != VERSION or offset < first or offset + length > dev_size:
            return None
        start = offset // block_size * block_size
        end = _ceil(offset + length, block_size) * block_size
        raw = await read(start, end - start)
        data = raw[offset - start : offset - start + length]
        if zlib.crc32(data) != payload_crc:
            return None
        try:
            return Blobstore.from_json(json.loads(zlib.decompress(data)), seq)
        except (ValueError, KeyError, TypeError, IndexError, zlib.error):
            return None
