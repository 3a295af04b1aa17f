"""Logical volumes: lvstores and lvols, with their metadata kept on the base bdev.

An lvstore claims its base bdev (read_many_write_one) and keeps a blobstore on it
(blobstore.py); every lvol, snapshot and clone is a blob and is registered as a bdev named
by its uuid with the alias `<lvstore>/<lvol>`. Metadata changes are written through the
base bdev before an RPC answers, so an I/O error or a held I/O on the base shows in the RPC,
and the examiner finds the lvstore again when the same device comes back after a restart.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from typing import Any, ClassVar

from .bdev import CLAIM_READ_MANY_WRITE_NONE, CLAIM_READ_MANY_WRITE_ONE, Bdev, io_types
from .blobstore import Blob, Blobstore, BlobstoreError
from .decode import U64_MAX, decode
from .errors import (
    EBUSY,
    EEXIST,
    EINVAL,
    EIO,
    ENODEV,
    ENOENT,
    EPERM,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    RpcError,
    errno_error,
    errno_message,
)
from .registry import examiner, rpc
from .target import Target

MIB = 1024 * 1024
DEFAULT_CLUSTER_SIZE = 4 * MIB
NAME_MAX = 64  # SPDK_LVS_NAME_MAX / SPDK_LVOL_NAME_MAX, terminator included
CLEAR_METHODS = ("none", "unmap", "write_zeroes")
# The size of SPDK's stand-in device for an external snapshot it could not claim (bs_dev_degraded:
# blockcnt UINT64_MAX / 512 of 512 bytes): never a multiple of a cluster size.
DEGRADED_DEV_SIZE = U64_MAX // 512 * 512


def _bs_error(err: BlobstoreError, code: int = INVALID_PARAMS) -> RpcError:
    return errno_message(code, -err.errno)


def _io_error(code: int = INVALID_PARAMS) -> RpcError:
    return errno_message(code, EIO)


class LeakedDescriptor:
    """A write descriptor a failed lvstore init leaves open on its base (as SPDK does)."""

    def base_removed(self, bdev: Bdev) -> None:
        return None


class EsnapDev:
    """An esnap clone's hold on its external snapshot: a read-only descriptor with a
    read_many_write_none claim (spdk_bdev_create_bs_dev + spdk_bs_bdev_claim)."""

    def __init__(self, bdev: Bdev) -> None:
        self.bdev = bdev

    def base_removed(self, bdev: Bdev) -> None:
        return None  # SPDK only logs the event

    def release(self) -> None:
        self.bdev.release(self)


def _claim_esnap(bdev: Bdev) -> EsnapDev | None:
    """Open and claim an external snapshot; None when the claim is refused (claimed otherwise,
    or an unclaimed bdev open for writing), which leaves SPDK with a degraded device."""
    if bdev.removed or (bdev.claim_type is None and (bdev.openers or bdev.watchers)):
        return None
    dev = EsnapDev(bdev)
    try:
        bdev.claim(dev, CLAIM_READ_MANY_WRITE_NONE)
    except RpcError:
        return None
    return dev


class LvolState:
    """Every loaded lvstore (in load order) and the names SPDK's lvstore list holds."""

    def __init__(self) -> None:
        self.stores: list[LvolStore] = []
        self.reserved: set[str] = set()  # lvstores being created, or left half-made

    def by_name(self, name: str) -> LvolStore | None:
        return next((s for s in self.stores if s.name == name), None)

    def by_uuid(self, text: str) -> LvolStore | None:
        try:
            wanted = uuidlib.UUID(text)
        except ValueError:
            return None
        return next((s for s in self.stores if uuidlib.UUID(s.uuid) == wanted), None)

    def name_in_use(self, name: str) -> bool:
        return name in self.reserved or self.by_name(name) is not None


class LvolStore:
    """One loaded lvstore: its blobstore, its base bdev and its lvol bdevs in list order."""

    def __init__(self, target: Target, base: Bdev, bs: Blobstore) -> None:
        self.target = target
        self.base = base
        self.bs = bs
        self.lvols: list[LvolBdev] = []
        self.removing = False
        self.pending: set[str] = set()  # lvol names being created
        self.new_name = ""  # SPDK's lvs->new_name: set by the first rename that gets under way
        self.lock = asyncio.Lock()
        self.esnap_devs: dict[int, EsnapDev] = {}  # blob id of an esnap clone -> its external snapshot

    @property
    def name(self) -> str:
        return self.bs.name

    @property
    def uuid(self) -> str:
        return self.bs.uuid

    async def persist(self) -> None:
        async with self.lock:
            await self.bs.persist(self.base.write)

    async def persist_change(self) -> None:
        """Write a metadata change made by an RPC; an I/O error is -32602 EIO."""
        try:
            await self.persist()
        except (RpcError, BlobstoreError) as e:
            raise _io_error() from e

    def find(self, name: str) -> LvolBdev | None:
        return next((lv for lv in self.lvols if lv.blob.name == name), None)

    # ---- external snapshots ----------------------------------------------------------------
    def set_external_parent(self, blob: Blob, bdev: Bdev) -> None:
        """vbdev_lvol_set_external_parent: claim the bdev, then make the blob its esnap clone."""
        esnap_id = bdev.uuid.lower()
        if esnap_id == blob.uuid:
            raise errno_message(INVALID_PARAMS, EINVAL)
        dev = _claim_esnap(bdev)
        try:
            self.bs.set_external_parent(blob, esnap_id, bdev.size_bytes if dev else DEGRADED_DEV_SIZE)
        except BlobstoreError as e:
            if dev is not None:
                dev.release()
            raise _bs_error(e) from e
        old = self.esnap_devs.pop(blob.id, None)
        if dev is not None:
            self.esnap_devs[blob.id] = dev
        if old is not None:
            old.release()

    def sync_esnaps(self) -> None:
        """After a change of parents: every esnap clone holds its external snapshot (a hold moves
        with the esnap, e.g. to a new snapshot), blobs that are no longer esnap clones let go."""
        wanted = {b.id: b.esnap for b in self.bs.blobs.values() if b.esnap is not None}
        stale = [d for i, d in self.esnap_devs.items() if wanted.get(i) != d.bdev.uuid.lower()]
        self.esnap_devs = {i: d for i, d in self.esnap_devs.items() if d not in stale}
        for blob_id, esnap in wanted.items():
            if blob_id in self.esnap_devs:
                continue
            dev = next((d for d in stale if d.bdev.uuid.lower() == esnap), None)
            if dev is not None:
                stale.remove(dev)
            else:
                bdev = self.target.find_bdev(esnap)
                dev = _claim_esnap(bdev) if bdev is not None else None
            if dev is not None:
                self.esnap_devs[blob_id] = dev
        for d in stale:
            d.release()

    def release_esnaps(self) -> None:
        devs, self.esnap_devs = list(self.esnap_devs.values()), {}
        for d in devs:
            d.release()

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "base_bdev": self.base.name,
            "total_data_clusters": self.bs.total_data_clusters,
            "free_clusters": self.bs.free_clusters,
            "block_size": self.bs.io_unit_size,
            "cluster_size": self.bs.cluster_size,
            "max_growable_size": self.bs.max_growable_size,
        }

    # ---- base bdev ------------------------------------------------------------------------
    async def base_removed(self, bdev: Bdev) -> None:
        """The base went away: the lvstore unloads after its lvol bdevs are hot-removed."""
        state = self.target.state(LvolState)
        if self in state.stores:
            state.stores.remove(self)
        self.removing = True
        lvols, self.lvols = list(self.lvols), []
        for lvol in lvols:
            await self.target.unregister_bdev(lvol)
        self.release_esnaps()
        self.base.release(self)

    # ---- data path ------------------------------------------------------------------------
    async def read_chain(self, blob: Blob | None, index: int, offset: int, length: int) -> bytes | None:
        """Read within blob cluster `index` from the first blob of the parent chain that has it
        (or from the chain's external snapshot); None when nothing backs it (zeros)."""
        cs = self.bs.cluster_size
        seen: set[int] = set()
        while blob is not None and index < blob.num_clusters and blob.id not in seen:
            seen.add(blob.id)
            cluster = blob.clusters[index]
            if cluster:
                return await self.base.read(cluster * cs + offset, length)
            if blob.esnap is not None:
                return await self._read_esnap(blob, index * cs + offset, length)
            blob = self.bs.blobs.get(blob.parent) if blob.parent is not None else None
        return None

    async def _read_esnap(self, blob: Blob, offset: int, length: int) -> bytes | None:
        """Read an esnap clone's external snapshot; what lies beyond its end reads as zeros."""
        dev = self.esnap_devs.get(blob.id)
        if dev is None or dev.bdev.removed or offset >= dev.bdev.size_bytes:
            return None
        n = min(length, dev.bdev.size_bytes - offset)
        return await dev.bdev.read(offset, n) + bytes(length - n)

    async def read_cluster_part(self, blob: Blob | None, index: int, offset: int, length: int) -> bytes:
        """Read within one blob cluster, falling through to the parent chain, else zeros."""
        data = await self.read_chain(blob, index, offset, length)
        return bytes(length) if data is None else data

    async def read_blob(self, blob: Blob, offset: int, length: int) -> bytes:
        cs = self.bs.cluster_size
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            index, off = divmod(pos, cs)
            n = min(cs - off, end - pos)
            out += await self.read_cluster_part(blob, index, off, n)
            pos += n
        return bytes(out)

    async def write_blob(self, blob: Blob, offset: int, data: bytes) -> None:
        if blob.read_only:
            raise errno_error(EIO)
        cs = self.bs.cluster_size
        pos = 0
        while pos < len(data):
            index, off = divmod(offset + pos, cs)
            n = min(cs - off, len(data) - pos)
            chunk = data[pos : pos + n]
            cluster = blob.clusters[index]
            if cluster:
                await self.base.write(cluster * cs + off, chunk)
            else:
                await self._allocate_and_write(blob, index, off, chunk)
            pos += n

    async def _allocate_and_write(self, blob: Blob, index: int, off: int, chunk: bytes) -> None:
        """First write to a thin cluster: copy the backing cluster (if any), then the data."""
        cs = self.bs.cluster_size
        backing = await self.read_chain(blob, index, 0, cs)
        try:
            cluster = self.bs.allocate_cluster(blob, index)
        except BlobstoreError as e:
            raise errno_error(-e.errno) from e
        if backing is not None:
            buf = bytearray(backing)
            buf[off : off + len(chunk)] = chunk
            await self.base.write(cluster * cs, bytes(buf))
        else:
            await self.base.write(cluster * cs + off, chunk)
        await self.persist()

    async def fill_clusters(self, blob: Blob, indexes: list[int]) -> None:
        """Allocate the given clusters of a blob, copying their content from its parent chain."""
        cs = self.bs.cluster_size
        for n, index in enumerate(indexes):
            data = await self.read_chain(blob, index, 0, cs)
            if blob.clusters[index]:
                continue  # written meanwhile
            cluster = self.bs.allocate_cluster(blob, index)
            if data is not None:
                await self.base.write(cluster * cs, data)
            if n % 256 == 255:
                await asyncio.sleep(0)  # a long copy must not hold up other RPCs


class LvolBdev(Bdev):
    product_name = "Logical Volume"
    module = "lvol"
    io: ClassVar[dict[str, bool]] = io_types(
        read=True, write=True, unmap=True, reset=True, write_zeroes=True, seek_hole=True, seek_data=True
    )

    def __init__(self, store: LvolStore, blob: Blob) -> None:
        bs = store.bs
        super().__init__(
            store.target,
            blob.uuid,
            blob.num_clusters * bs.cluster_size // bs.io_unit_size,
            bs.io_unit_size,
            blob.uuid,
            aliases=[f"{store.name}/{blob.name}"],
        )
        self.store = store
        self.blob = blob
        # SPDK caches the supported I/O types when the bdev registers.
        self.registered_read_only = blob.read_only

    async def do_read(self, offset: int, length: int) -> bytes:
        return await self.store.read_blob(self.blob, offset, length)

    async def do_write(self, offset: int, data: bytes) -> None:
        await self.store.write_blob(self.blob, offset, data)

    def memory_domains(self) -> list[dict[str, str]] | None:
        """The base's domains, followed by the external snapshot's for an esnap clone."""
        domains = self.store.base.stacked_memory_domains()
        esnap = self.store.esnap_devs.get(self.blob.id)
        if esnap is not None:
            domains += esnap.bdev.stacked_memory_domains()
        return domains or None

    def driver_specific(self) -> dict[str, Any]:
        bs = self.store.bs
        blob = self.blob
        clones = bs.clones_of(blob.id)
        info: dict[str, Any] = {
            "lvol_store_uuid": self.store.uuid,
            "base_bdev": self.store.base.name,
            "thin_provision": blob.thin,
            "num_allocated_clusters": blob.allocated,
            "snapshot": bs.is_snapshot(blob),
            "clone": blob.parent is not None,
        }
        if blob.parent is not None:
            parent = bs.blobs.get(blob.parent)
            if parent is not None:
                info["base_snapshot"] = parent.name
        if clones:
            info["clones"] = [c.name for c in clones]
        info["esnap_clone"] = blob.esnap is not None
        if blob.esnap is not None:
            info["external_snapshot_name"] = blob.esnap
        return {"lvol": info}

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if "numa_id" not in self.store.base.to_json():
            out.pop("numa_id", None)
        if self.registered_read_only:
            io = dict(out["supported_io_types"])
            io.update(write=False, unmap=False, write_zeroes=False)
            out["supported_io_types"] = io
        return out

    def lvol_json(self) -> dict[str, Any]:
        """One entry of bdev_lvol_get_lvols."""
        blob = self.blob
        store = self.store
        return {
            "alias": f"{store.name}/{blob.name}",
            "uuid": blob.uuid,
            "name": blob.name,
            "is_thin_provisioned": blob.thin,
            "is_snapshot": store.bs.is_snapshot(blob),
            "is_clone": blob.parent is not None,
            "is_esnap_clone": blob.esnap is not None,
            "is_degraded": False,
            "num_allocated_clusters": blob.allocated,
            "lvs": {"name": store.name, "uuid": store.uuid},
        }

    def set_alias(self, alias: str) -> None:
        self.aliases = [alias]


# ---- lookups ------------------------------------------------------------------------------


def _store_by_uuid_xor_name(target: Target, uuid: str | None, name: str | None) -> LvolStore:
    """vbdev_get_lvol_store_by_uuid_xor_name: -22 for none or both, -19 when unknown."""
    state = target.state(LvolState)
    if (uuid is None) == (name is None):
        raise errno_error(EINVAL)
    store = state.by_uuid(uuid) if uuid is not None else state.by_name(name or "")
    if store is None:
        raise errno_error(ENODEV)
    return store


def _lvol_by_bdev_name(target: Target, name: str) -> LvolBdev:
    bdev = target.find_bdev(name)
    if not isinstance(bdev, LvolBdev):
        raise errno_error(ENODEV)
    return bdev


def _check_lvol_name(store: LvolStore, name: str, code: int | None) -> None:
    """lvs_verify_lvol_name; code None means the errno itself is the JSON-RPC code."""
    err = 0
    if not name or len(name.encode()) >= NAME_MAX:
        err = EINVAL
    elif store.find(name) is not None or name in store.pending:
        err = EEXIST
    if err:
        raise errno_error(err) if code is None else errno_message(code, err)


def _cut_name(name: str) -> str:
    """snprintf into a 64-byte name buffer: at most 63 bytes of UTF-8. (SPDK may cut a character
    in two, leaving a name its JSON writer cannot emit; here the partial character is dropped.)"""
    return name.encode()[: NAME_MAX - 1].decode(errors="ignore")


def _new_uuid() -> str:
    return str(uuidlib.uuid4())


def _size_bytes(size_in_mib: int) -> int:
    return (size_in_mib * MIB) & U64_MAX


def _clusters_for(store: LvolStore, size: int) -> int:
    return -(-size // store.bs.cluster_size)


# ---- lvstores -----------------------------------------------------------------------------


@rpc("bdev_lvol_create_lvstore")
async def bdev_lvol_create_lvstore(target: Target, params: Any) -> Any:
    p = decode(
        params,
        {
            "bdev_name": ("str", True),
            "lvs_name": ("str", True),
            "cluster_sz": ("u32", False),
            "clear_method": ("str", False),
            "num_md_pages_per_cluster_ratio": ("u32", False),
            "md_page_size": ("u32", False),
        },
    )
    clear = p.get("clear_method")
    if clear is not None and clear.lower() not in CLEAR_METHODS:
        raise RpcError(-EINVAL, "Invalid clear_method parameter")
    name: str = p["lvs_name"]
    if not name or len(name.encode()) >= NAME_MAX:
        raise errno_error(EINVAL)
    md_page = p.get("md_page_size", 0)
    if md_page and (md_page < 4096 or md_page > 65536 or md_page & (md_page - 1)):
        raise errno_error(EINVAL)
    base = target.get_bdev(p["bdev_name"])
    if base.claim_type is not None:
        raise errno_error(EPERM)
    cluster_sz = p.get("cluster_sz") or DEFAULT_CLUSTER_SIZE
    if cluster_sz < base.block_size or cluster_sz % base.block_size:
        raise errno_error(EINVAL)
    state = target.state(LvolState)
    if state.name_in_use(name):
        raise errno_error(EEXIST)
    state.reserved.add(name)
    keep_reserved = False
    try:
        try:
            bs = Blobstore.create(
                _new_uuid(),
                name,
                base.size_bytes,
                base.block_size,
                cluster_sz,
                md_page,
                p.get("num_md_pages_per_cluster_ratio") or 100,
            )
        except BlobstoreError as e:
            raise _bs_error(e) from e
        store = LvolStore(target, base, bs)
        try:
            await store.persist()
        except RpcError as e:
            base.open(LeakedDescriptor())
            raise _io_error() from e
        except BlobstoreError as e:
            raise _bs_error(e) from e
        if base.removed:
            raise errno_message(INVALID_PARAMS, ENODEV)
        # A read-write-once claim needs every other descriptor closed for writing (an iSCSI
        # LUN's, or one a failed init left behind); the half-made store keeps its name.
        if base.openers or base.watchers or base.claim_type is not None:
            keep_reserved = True
            raise errno_message(INVALID_PARAMS, EPERM)
        base.claim(store, CLAIM_READ_MANY_WRITE_ONE)
        state.stores.append(store)
        return bs.uuid
    finally:
        if not keep_reserved:
            state.reserved.discard(name)


@rpc("bdev_lvol_delete_lvstore")
async def bdev_lvol_delete_lvstore(target: Target, params: Any) -> Any:
    p = decode(params, {"uuid": ("str", False), "lvs_name": ("str", False)})
    store = _store_by_uuid_xor_name(target, p.get("uuid"), p.get("lvs_name"))
    store.removing = True
    bs = store.bs
    while store.lvols:
        lvol = next((lv for lv in store.lvols if not bs.clones_of(lv.blob.id)), None)
        if lvol is None:
            break
        store.lvols.remove(lvol)
        await target.unregister_bdev(lvol)
        bs.delete(lvol.blob)
    store.release_esnaps()
    state = target.state(LvolState)
    if store in state.stores:
        state.stores.remove(store)
    try:
        await bs.erase(store.base.write)
    except RpcError as e:
        raise _io_error() from e
    finally:
        store.base.release(store)
    return True


@rpc("bdev_lvol_get_lvstores")
async def bdev_lvol_get_lvstores(target: Target, params: Any) -> Any:
    if params is not None:
        p = decode(params, {"uuid": ("str", False), "lvs_name": ("str", False)})
        store = _store_by_uuid_xor_name(target, p.get("uuid"), p.get("lvs_name"))
        return [store.to_json()]
    return [s.to_json() for s in target.state(LvolState).stores]


@rpc("bdev_lvol_rename_lvstore")
async def bdev_lvol_rename_lvstore(target: Target, params: Any) -> Any:
    p = decode(params, {"old_name": ("str", True), "new_name": ("str", True)})
    state = target.state(LvolState)
    store = state.by_name(p["old_name"])
    if store is None:
        raise RpcError(-ENOENT, f"Lvol store {p['old_name']} not found")
    wanted: str = p["new_name"]
    if wanted == store.name:
        return True
    # spdk_lvs_rename compares the uncut name with every store's name and new_name ('' until a
    # rename of that store got under way; a store being created has one too), then cuts it.
    if state.name_in_use(wanted) or any(wanted == s.new_name for s in state.stores) or (not wanted and state.reserved):
        raise errno_message(INVALID_PARAMS, EEXIST)
    new = _cut_name(wanted)
    old = store.bs.name
    store.new_name = store.bs.name = new
    try:
        await store.persist()
    except (RpcError, BlobstoreError) as e:
        store.new_name = store.bs.name = old
        raise _io_error() from e
    for lvol in store.lvols:
        alias = f"{new}/{lvol.blob.name}"
        if not target.name_taken(alias):
            lvol.set_alias(alias)
    return True


@rpc("bdev_lvol_grow_lvstore")
async def bdev_lvol_grow_lvstore(target: Target, params: Any) -> Any:
    p = decode(params, {"uuid": ("str", False), "lvs_name": ("str", False)})
    store = _store_by_uuid_xor_name(target, p.get("uuid"), p.get("lvs_name"))
    bs = store.bs
    dev_size = store.base.size_bytes
    if dev_size == bs.size:
        return True
    total = dev_size // bs.cluster_size
    mask_len = -(-(5 + -(-total // 8)) // bs.md_page_size)
    if dev_size < bs.size or total < bs.total_clusters or mask_len > bs.layout.max_mask_len:
        raise errno_message(INVALID_PARAMS, 28)
    old_size = bs.size
    bs.size = dev_size
    bs.used_clusters += bytearray(total - len(bs.used_clusters))
    try:
        await store.persist()
    except (RpcError, BlobstoreError) as e:
        bs.size = old_size
        del bs.used_clusters[old_size // bs.cluster_size :]
        raise _io_error() from e
    return True


# ---- lvols --------------------------------------------------------------------------------


async def _register_lvol(target: Target, store: LvolStore, blob: Blob, code: int) -> LvolBdev:
    """Make and register the bdev of a new blob; on a name clash the blob is removed again."""
    lvol = LvolBdev(store, blob)
    try:
        target.check_new(lvol.name, lvol.uuid, lvol.aliases)
    except RpcError as e:
        store.bs.delete(blob)
        await store.persist()
        raise errno_message(code, EEXIST) from e
    store.lvols.append(lvol)
    await target.register_bdev(lvol)
    return lvol


async def _persist_new_blob(store: LvolStore, blob: Blob, undo: Any = None) -> None:
    """Write the new blob's metadata; its name counts as taken while that I/O runs."""
    store.pending.add(blob.name)
    try:
        await store.persist()
    except (RpcError, BlobstoreError) as e:
        if undo is not None:
            undo()
        elif blob.id in store.bs.blobs:
            store.bs.delete(blob)
        if isinstance(e, BlobstoreError):
            raise _bs_error(e) from e
        raise _io_error() from e
    finally:
        store.pending.discard(blob.name)


@rpc("bdev_lvol_create")
async def bdev_lvol_create(target: Target, params: Any) -> Any:
    p = decode(
        params,
        {
            "uuid": ("str", False),
            "lvs_name": ("str", False),
            "lvol_name": ("str", True),
            "size_in_mib": ("u64", True),
            "thin_provision": ("bool", False),
            "clear_method": ("str", False),
        },
    )
    store = _store_by_uuid_xor_name(target, p.get("uuid"), p.get("lvs_name"))
    clear = p.get("clear_method")
    if clear is not None and clear.lower() not in CLEAR_METHODS:
        raise RpcError(-EINVAL, "Invalid clean_method option")
    name: str = p["lvol_name"]
    _check_lvol_name(store, name, None)
    clusters = _clusters_for(store, _size_bytes(p["size_in_mib"]))
    try:
        blob = store.bs.create_blob(
            name, _new_uuid(), clusters, p.get("thin_provision", False), (clear or "default").lower()
        )
    except BlobstoreError as e:
        raise _bs_error(e) from e
    await _persist_new_blob(store, blob)
    lvol = await _register_lvol(target, store, blob, INVALID_PARAMS)
    return lvol.uuid


@rpc("bdev_lvol_get_lvols")
async def bdev_lvol_get_lvols(target: Target, params: Any) -> Any:
    stores = target.state(LvolState).stores
    if params is not None:
        p = decode(params, {"lvs_uuid": ("str", False), "lvs_name": ("str", False)})
        stores = [_store_by_uuid_xor_name(target, p.get("lvs_uuid"), p.get("lvs_name"))]
    return [lv.lvol_json() for s in stores for lv in s.lvols if not lv.removed]


@rpc("bdev_lvol_resize")
async def bdev_lvol_resize(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True), "size_in_mib": ("u64", True)})
    lvol = _lvol_by_bdev_name(target, p["name"])
    store, blob = lvol.store, lvol.blob
    new_clusters = _clusters_for(store, _size_bytes(p["size_in_mib"]))
    old_clusters = blob.num_clusters
    if blob.read_only:
        raise errno_message(INVALID_PARAMS, EPERM)
    if new_clusters != old_clusters:
        try:
            store.bs.resize(blob, new_clusters)
        except BlobstoreError as e:
            raise _bs_error(e) from e
        try:
            await store.persist()
        except (RpcError, BlobstoreError) as e:
            raise _io_error() from e
    new_blocks = blob.num_clusters * store.bs.cluster_size // lvol.block_size
    if new_blocks != lvol.num_blocks:
        if new_blocks < lvol.num_blocks and (lvol.is_open or lvol.watchers):
            raise errno_message(INVALID_PARAMS, EBUSY)
        lvol.resize(new_blocks)
    return True


@rpc("bdev_lvol_snapshot")
async def bdev_lvol_snapshot(target: Target, params: Any) -> Any:
    p = decode(params, {"lvol_name": ("str", True), "snapshot_name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["lvol_name"])
    store = lvol.store
    _check_lvol_name(store, p["snapshot_name"], INVALID_PARAMS)
    orig = lvol.blob
    saved = (list(orig.clusters), list(orig.extent_pages), orig.thin, orig.parent, orig.clone_seq, orig.esnap)
    try:
        snap = store.bs.snapshot(orig, p["snapshot_name"], _new_uuid())
    except BlobstoreError as e:
        raise _bs_error(e) from e

    def undo() -> None:
        del store.bs.blobs[snap.id]
        store.bs.used_md[snap.id] = 0
        store.bs.snapshots.discard(snap.id)
        orig.clusters, orig.extent_pages, orig.thin, orig.parent, orig.clone_seq, orig.esnap = saved

    await _persist_new_blob(store, snap, undo)
    store.sync_esnaps()
    new = await _register_lvol(target, store, snap, INVALID_PARAMS)
    return new.uuid


@rpc("bdev_lvol_clone")
async def bdev_lvol_clone(target: Target, params: Any) -> Any:
    p = decode(params, {"snapshot_name": ("str", True), "clone_name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["snapshot_name"])
    store = lvol.store
    _check_lvol_name(store, p["clone_name"], INVALID_PARAMS)
    try:
        blob = store.bs.clone(lvol.blob, p["clone_name"], _new_uuid())
    except BlobstoreError as e:
        raise _bs_error(e) from e
    await _persist_new_blob(store, blob)
    new = await _register_lvol(target, store, blob, INVALID_PARAMS)
    return new.uuid


async def _inflate(target: Target, params: Any, allocate_all: bool) -> Any:
    p = decode(params, {"name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["name"])
    store, blob, bs = lvol.store, lvol.blob, lvol.store.bs
    if blob.parent is None and blob.esnap is None and not allocate_all:
        raise errno_message(INVALID_PARAMS, EINVAL)
    if not blob.thin:
        return True
    needed = bs.clusters_to_fill(blob, allocate_all)
    if len(needed) > bs.free_clusters:
        raise errno_message(INVALID_PARAMS, 28)
    try:
        await store.fill_clusters(blob, needed)
    except RpcError as e:
        raise _io_error() from e
    except BlobstoreError as e:
        raise _bs_error(e) from e
    failed: BlobstoreError | None = None
    try:
        bs.inflated(blob, allocate_all)
    except BlobstoreError as e:
        failed = e
    await store.persist_change()
    store.sync_esnaps()
    if failed is not None:
        raise _bs_error(failed)
    return True


@rpc("bdev_lvol_inflate")
async def bdev_lvol_inflate(target: Target, params: Any) -> Any:
    return await _inflate(target, params, True)


@rpc("bdev_lvol_decouple_parent")
async def bdev_lvol_decouple_parent(target: Target, params: Any) -> Any:
    return await _inflate(target, params, False)


@rpc("bdev_lvol_set_parent")
async def bdev_lvol_set_parent(target: Target, params: Any) -> Any:
    p = decode(params, {"lvol_name": ("str", True), "parent_name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["lvol_name"])
    parent = _lvol_by_bdev_name(target, p["parent_name"])
    store = lvol.store
    try:
        store.bs.set_parent(lvol.blob, parent.blob.id)
    except BlobstoreError as e:
        raise _bs_error(e) from e
    await store.persist_change()
    store.sync_esnaps()
    return True


@rpc("bdev_lvol_set_parent_bdev")
async def bdev_lvol_set_parent_bdev(target: Target, params: Any) -> Any:
    p = decode(params, {"lvol_name": ("str", True), "parent_name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["lvol_name"])
    esnap = target.find_bdev(p["parent_name"])
    if esnap is None:
        raise errno_message(INVALID_PARAMS, ENODEV)
    lvol.store.set_external_parent(lvol.blob, esnap)
    await lvol.store.persist_change()
    return True


@rpc("bdev_lvol_set_read_only")
async def bdev_lvol_set_read_only(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["name"])
    lvol.blob.read_only = True
    try:
        await lvol.store.persist()
    except (RpcError, BlobstoreError) as e:
        raise _io_error() from e
    return True


@rpc("bdev_lvol_rename")
async def bdev_lvol_rename(target: Target, params: Any) -> Any:
    p = decode(params, {"old_name": ("str", True), "new_name": ("str", True)})
    lvol = _lvol_by_bdev_name(target, p["old_name"])
    store, blob = lvol.store, lvol.blob
    new: str = p["new_name"]
    alias = f"{store.name}/{new}"
    if target.name_taken(alias):
        raise errno_message(INVALID_PARAMS, EEXIST)
    lvol.set_alias(alias)
    if new == blob.name:
        return True
    if store.find(new) is not None:
        raise errno_message(INVALID_PARAMS, EEXIST)
    if blob.read_only:
        raise errno_message(INVALID_PARAMS, EPERM)
    old = blob.name
    blob.name = _cut_name(new)
    try:
        await store.persist()
    except (RpcError, BlobstoreError) as e:
        blob.name = old
        raise _io_error() from e
    return True


def _find_lvol_for_delete(target: Target, name: str) -> LvolBdev:
    """bdev_lvol_delete looks up a bdev name or alias, then the lvol uuid, then lvs/lvol."""
    bdev = target.find_bdev(name)
    if isinstance(bdev, LvolBdev):
        return bdev
    for store in target.state(LvolState).stores:
        for lvol in store.lvols:
            if name in (lvol.blob.uuid, f"{store.name}/{lvol.blob.name}"):
                return lvol
    raise errno_error(ENODEV)


@rpc("bdev_lvol_delete")
async def bdev_lvol_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    lvol = _find_lvol_for_delete(target, p["name"])
    store = lvol.store
    if store.removing:
        raise errno_message(INTERNAL_ERROR, ENODEV)
    if len(store.bs.clones_of(lvol.blob.id)) > 1:
        raise errno_message(INTERNAL_ERROR, EPERM)
    if lvol in store.lvols:
        store.lvols.remove(lvol)
    await target.unregister_bdev(lvol)
    store.bs.delete(lvol.blob)
    store.sync_esnaps()
    try:
        await store.persist()
    except (RpcError, BlobstoreError) as e:
        raise _io_error(INTERNAL_ERROR) from e
    return True


# ---- examine ------------------------------------------------------------------------------


def _depth(bs: Blobstore, blob: Blob) -> int:
    depth = 0
    seen = {blob.id}
    while blob.parent is not None and blob.parent in bs.blobs and blob.parent not in seen:
        blob = bs.blobs[blob.parent]
        seen.add(blob.id)
        depth += 1
    return depth


@examiner(20, "lvol")
async def examine_lvstore(target: Target, bdev: Bdev) -> None:
    """Load an lvstore found on a new bdev and register its lvols (vbdev_lvs_examine_disk)."""
    md_size: int = getattr(bdev, "md_size", 0)
    if bdev.claim_type is not None or md_size:
        return
    try:
        bs = await Blobstore.load(bdev.read, bdev.size_bytes, bdev.block_size)
    except RpcError:
        return
    if bs is None or bs.size > bdev.size_bytes or bs.io_unit_size % bdev.block_size:
        return
    state = target.state(LvolState)
    if bdev.removed or bdev.claim_type is not None or state.name_in_use(bs.name):
        return
    if state.by_uuid(bs.uuid) is not None:
        return
    store = LvolStore(target, bdev, bs)
    bdev.claim(store, CLAIM_READ_MANY_WRITE_ONE)
    state.stores.append(store)
    store.sync_esnaps()
    blobs = [b for b in sorted(bs.blobs.values(), key=lambda b: b.id) if b.id != bs.super_blob]
    store.lvols = [LvolBdev(store, b) for b in blobs]
    # All lvols are opened at once; one whose blob has a parent finishes opening (and
    # registers) only after the parent chain has been loaded.
    for lvol in sorted(store.lvols, key=lambda lv: (_depth(bs, lv.blob), lv.blob.id)):
        if store.removing:
            return
        try:
            target.check_new(lvol.name, lvol.uuid, lvol.aliases)
        except RpcError:
            store.lvols.remove(lvol)
            continue
        await target.register_bdev(lvol)
