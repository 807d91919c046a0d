"""The geo-replicated image store: versions with close-to-open consistency, every change a transaction.

* **One writer at a time.** ``open_image_write`` gives the image to one session; a second writer is
  *refused* (its transaction aborts naming the holder) until the first closes or aborts. The writer's
  data stays local (in its region) until it closes.
* **Close publishes.** ``close_image_write`` writes the data as version ``N`` (``next_version``, never
  reused) in the writer's region, then publishes its metadata (version, digest, size) to the catalog
  (``/images/<name>/v<N>``, in the controller's store: SQLite embedded, ZooKeeper distributed) and makes it
  the latest, in one transaction. With the ``eager`` policy the same transaction copies it to every other
  region with a storage host.
* **Open sees the last close.** ``open_image`` pins the latest version published at that moment (a reader
  is recorded on it); a reader that opened before a close keeps its version until it closes. A region
  without a replica fetches one on its first open (``lazy``), with a transfer time from the region pair.
* **Collection never takes a version in use.** ``gc_image`` collects old versions that no session has
  open and whose data backs no volume (hence no VM); the latest is never collected.

Replicas are images ``<name>-v<N>`` on the first storage host of a region (an ordinary device action,
``add_image``/``remove_image``, undone with the transaction). :func:`ensure_replica` is how the migration
and the replicated service make an image present in a region.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from tropic.errors import ModelError
from tropic.model import Image, Region, StorageHost, StorageRoot, View
from tropic.model.geo import IMAGES, LINKS, Links, Root
from tropic.model.images import GeoImage, ImageRoot, ImageVersion, in_use, replica_name, version_name
from tropic.procedures.base import Name, ProcedureFn

STORAGE = "/storage"
# a replica is named <name>-v<N>: room for the suffix within a 63-character name
MAX_IMAGE_NAME_LENGTH = 50


def location(view: View, region: str) -> str:
    """The latency-matrix key of region ``region`` (a name): its ``location``, else its name."""
    for root in ("/compute", STORAGE):
        path = f"{root}/{region}"
        if view.exists(path):
            return view.get(path, Region).location or region
    return region


def _transfer(view: View, src: str, dst: str, size_mib: float) -> float:
    """Seconds to copy ``size_mib`` between regions ``src`` and ``dst``: one round trip plus the size over
    the pair's bandwidth (``/links``)."""
    links = view.get(LINKS, Links) if view.exists(LINKS) else None
    a, b = location(view, src), location(view, dst)
    if links is None:
        rtt = 1.0 if a == b else 150.0
        bw = min(1250.0, 16.0 / (rtt / 1000.0))
    else:
        rtt, bw = links.rtt(a, b), links.bandwidth(a, b)
    return round(rtt / 1000.0 + size_mib / bw, 6)


def first_san(view: View, region: str) -> StorageHost:
    """The storage host of region ``region`` that holds replicas (the first by name)."""
    path = f"{STORAGE}/{region}"
    if not view.exists(path):
        raise ModelError(f"region {region} has no storage ({path}): it cannot hold an image", path=path)
    sans = sorted(view.get(path, Region).children(StorageHost), key=lambda s: s.path)
    if not sans:
        raise ModelError(f"region {region} has no storage host to hold an image", path=path)
    return sans[0]


def geo_image(view: View, image: str) -> GeoImage:
    path = image if image.startswith("/") else f"{IMAGES}/{image}"
    return view.get(path, GeoImage)


def _region_of_image(path: str) -> str:
    return path.split("/")[2]  # /storage/<region>/<san>/<image>


def _fetch(view: View, v: ImageVersion, name: str, region: str) -> str:
    """Copy version ``v`` of image ``name`` to ``region`` from its nearest replica; the replica's path."""
    san = first_san(view, region)
    replica = replica_name(name, v.version)
    sources = sorted(v.replicas.items(), key=lambda kv: _transfer(view, kv[0], region, v.size_mib))
    if not sources:
        raise ModelError(f"{v.path} has no replica to copy from", path=v.path)
    source_region, source = sources[0]
    san.add_image(name=replica, size_gib=max(1, math.ceil(v.size_mib / 1024)))
    v.add_replica(
        region=region,
        image=f"{san.path}/{replica}",
        transfer_s=_transfer(view, source_region, region, v.size_mib),
        source=source,
    )
    return f"{san.path}/{replica}"


def _version_of_replica(view: View, image_path: str) -> tuple[GeoImage, ImageVersion] | None:
    """The catalog version whose replica ``image_path`` is (``.../<name>-v<N>``), if any."""
    base = image_path.rsplit("/", 1)[1]
    stem, sep, num = base.rpartition("-v")
    if not sep or not num.isdigit() or not view.exists(f"{IMAGES}/{stem}/{version_name(int(num))}"):
        return None
    img = view.get(f"{IMAGES}/{stem}", GeoImage)
    return img, img.child(version_name(int(num)), ImageVersion)


def ensure_replica(view: View, image: str, region: str) -> str:
    """The path of ``image``'s data in region ``region`` (a name), fetched there when missing (in this
    transaction, undone with it). ``image``: a catalog image (``/images/<name>``: its latest version), a
    replica of a catalog version (``.../<name>-v<N>``: that version), or a plain storage image (copied
    under the same name)."""
    if image.startswith(IMAGES + "/"):
        img = view.get(image, GeoImage)
        if not img.latest:
            raise ModelError(f"{img.path} has no published version yet", path=img.path)
        v = img.child(version_name(img.latest), ImageVersion)
        return v.replicas.get(region) or _fetch(view, v, img.name, region)
    found = _version_of_replica(view, image)
    if found is not None:
        img, v = found
        return v.replicas.get(region) or _fetch(view, v, img.name, region)
    if _region_of_image(image) == region:
        return image
    plain = view.get(image, Image)
    san = first_san(view, region)
    here = f"{san.path}/{plain.name}"
    if view.exists(here):
        return here
    san.add_image(name=plain.name, size_gib=plain.size_gib)
    return here


def create_image(
    view: View, *, name: Annotated[str, Name(MAX_IMAGE_NAME_LENGTH)], region: str, policy: str = "lazy"
) -> None:
    """Add image ``name`` to the catalog, homed in ``region``; its first writer publishes version 1.
    ``policy``: ``lazy`` (a region gets the data on its first open) or ``eager`` (every region on
    publish)."""
    first_san(view, region)
    if not view.exists(IMAGES):
        view.get("/", Root).add_image_root()
    view.get(IMAGES, ImageRoot).add_geo_image(name=name, home=region, policy=policy)


def open_image_write(view: View, *, image: str, region: str, session: str) -> None:
    """Open ``image`` for writing in ``region`` by ``session``; refused while another writer has it."""
    first_san(view, region)
    geo_image(view, image).begin_write(session=session, region=region)


def abort_image_write(view: View, *, image: str, session: str) -> None:
    """Give up a write: nothing is published."""
    geo_image(view, image).end_write(session=session)


def close_image_write(
    view: View, *, image: str, session: str, digest: str, size_mib: int, published_at: float = 0.0
) -> None:
    """Close the write of ``session``: its data becomes the next version in the writer's region, and the
    version's metadata is published to the catalog (any open after this sees it). With the eager policy,
    the version is copied to every other region in the same transaction."""
    img = geo_image(view, image)
    if img.writer != session:
        holder = f"session {img.writer}" if img.writer else "no session"
        raise ModelError(f"{img.path} is not open for writing by {session} ({holder} has it)", path=img.path)
    if size_mib < 1 or not digest:
        raise ModelError(f"{img.path}: a version needs a digest and a size >= 1 MiB", path=img.path)
    region = img.writer_region
    version = img.next_version
    san = first_san(view, region)
    name = replica_name(img.name, version)
    san.add_image(name=name, size_gib=max(1, math.ceil(size_mib / 1024)))
    img.publish(
        version=version,
        digest=digest,
        size_mib=size_mib,
        region=region,
        replica=f"{san.path}/{name}",
        published_at=published_at or round(time.time(), 3),
    )
    img.end_write(session=session)
    if img.policy == "eager":
        v = img.child(version_name(version), ImageVersion)
        for other in sorted(_storage_regions(view)):
            if other != region:
                _fetch(view, v, img.name, other)


def _storage_regions(view: View) -> list[str]:
    if not view.exists(STORAGE):
        return []
    out = []
    for r in view.get(STORAGE, StorageRoot).children(Region):
        if any(True for _ in r.children(StorageHost)):
            out.append(r.name)
    return out


def open_image(view: View, *, image: str, region: str, session: str) -> None:
    """Open ``image`` for reading in ``region``: ``session`` gets the latest version published (it keeps
    it until it closes, whatever is published meanwhile); the data is fetched to ``region`` if missing."""
    img = geo_image(view, image)
    if not img.latest:
        raise ModelError(f"{img.path} has no published version yet", path=img.path)
    held = opened_version(view, img.path, session)
    if held is not None:
        raise ModelError(f"session {session} already has {held.path} open: close it first", path=held.path)
    v = img.child(version_name(img.latest), ImageVersion)
    if region not in v.replicas:
        _fetch(view, v, img.name, region)
    v.add_reader(session=session)


def opened_version(view: View, image: str, session: str) -> ImageVersion | None:
    """The version ``session`` has open, if any."""
    for v in geo_image(view, image).versions():
        if session in v.readers:
            return v
    return None


def close_image(view: View, *, image: str, session: str) -> None:
    """Close what ``session`` has open of ``image`` (refused if it has nothing open)."""
    v = opened_version(view, image, session)
    if v is None:
        raise ModelError(f"session {session} has no version of {image} open", path=image)
    v.remove_reader(session=session)


def replicate_image(view: View, *, image: str, region: str, version: int = 0) -> None:
    """Copy a version (default: the latest) of ``image`` to ``region`` now (no-op if it is there)."""
    img = geo_image(view, image)
    number = version or img.latest
    if not number or not view.exists(f"{img.path}/{version_name(number)}"):
        raise ModelError(f"{img.path} has no version {number}", path=img.path)
    v = img.child(version_name(number), ImageVersion)
    if region not in v.replicas:
        _fetch(view, v, img.name, region)


def gc_image(view: View, *, image: str, keep: int = 1, published_before: float = 0.0) -> None:
    """Collect the old versions of ``image``: every version but the newest ``keep`` (at least the
    latest) that no session has open and whose data backs no volume; their replicas go with them. With
    ``published_before`` (Unix seconds; 0: any age), only versions published before it go: newer ones
    are kept whatever ``keep`` says (the autopilot's ``image-gc`` retention)."""
    img = geo_image(view, image)
    if keep < 1:
        raise ModelError(f"{img.path}: keep must be >= 1 (the latest is never collected)", path=img.path)
    versions = sorted(img.versions(), key=lambda v: v.version)
    for v in versions[: max(0, len(versions) - keep)]:
        if v.version == img.latest or in_use(view, v):
            continue
        if published_before and v.published_at >= published_before:
            continue
        for region, replica in sorted(v.replicas.items()):
            view.get(replica.rsplit("/", 1)[0], StorageHost).remove_image(name=replica.rsplit("/", 1)[1])
            v.remove_replica(region=region)
        img.collect_version(version=v.version)


def versions_of(view: View, image: str) -> list[dict[str, object]]:
    """The versions of ``image`` as plain data, oldest first (for views and the CLI)."""
    img = geo_image(view, image)
    out: list[dict[str, object]] = []
    for v in sorted(img.versions(), key=lambda v: v.version):
        row: dict[str, object] = dict(v.snapshot())
        row["latest"] = v.version == img.latest
        row["in_use"] = in_use(view, v)
        out.append(row)
    return out


IMAGE_PROCEDURES: tuple[ProcedureFn, ...] = (
    create_image,
    open_image_write,
    abort_image_write,
    close_image_write,
    open_image,
    close_image,
    replicate_image,
    gc_image,
)
