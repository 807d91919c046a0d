"""The geo-replicated image catalog: ``/images/<name>`` (kind ``geo_image``) and its published versions
``/images/<name>/v<N>`` (kind ``image_version``).

The catalog is part of the logical model, so it lives in the controller's store (SQLite embedded,
ZooKeeper in distributed mode) and changes only by transactions. A version's data lies in the regions
that hold a replica: an image ``<name>-v<N>`` on a storage host of that region (``replicas``: region ->
image path), a device the drivers hold. Who has a version open is recorded on the version
(``readers``: session ids), so garbage collection never takes a version in use. The semantics (close to
open, one writer at a time) are the procedures' (:mod:`tropic.procedures.images`); these are the records
and their model-only actions, each the other's undo.
"""

from __future__ import annotations

from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Undo, Value, action, query, undo
from tropic.model.schema import STANDARD, StorageHost, Volume
from tropic.model.tree import View

POLICIES = ("lazy", "eager")


def version_name(version: int) -> str:
    return f"v{version}"


def replica_name(image: str, version: int) -> str:
    """The name of a version's data on a storage host: ``<image>-v<N>``."""
    return f"{image}-v{version}"


class ImageRoot(Resource):
    """``/images``: the catalog."""

    kind = "image_catalog"

    @action(undo="remove_geo_image", device=False)
    def add_geo_image(self, *, name: str, home: str, policy: str = "lazy", next_version: int = 1) -> Undo:
        if policy not in POLICIES:
            raise ModelError(
                f"{self.path}/{name}: policy must be lazy or eager, not {policy!r}", path=self.path
            )
        if self._view.exists(f"{self.path}/{name}"):
            raise ResourceExists(f"image {self.path}/{name} already exists", path=self.path)
        self.add_child(GeoImage, name, home=home, policy=policy, next_version=next_version)
        return undo(name=name)

    @action(undo="add_geo_image", device=False)
    def remove_geo_image(self, *, name: str) -> Undo:
        img = self.child(name, GeoImage)
        if self._view.child_paths(img.path):
            raise ModelError(f"cannot remove {img.path}: it still has versions", path=img.path)
        if img.writer:
            raise ModelError(f"cannot remove {img.path}: it is open for writing", path=img.path)
        spec = img.snapshot()
        self.remove_child(name)
        return undo(name=name, home=spec["home"], policy=spec["policy"], next_version=spec["next_version"])


class GeoImage(Resource):
    """An image of the catalog: its latest published version and its writer, if one has it open."""

    kind = "geo_image"
    home = Attr(str, doc="region the image was created in")
    policy = Attr(str, "lazy", doc="lazy: data copied to a region on its first open; eager: on publish")
    latest = Attr(int, 0, doc="the newest published version (0: none yet)")
    next_version = Attr(int, 1, doc="the number the next publish gets; only grows (numbers never reused)")
    writer = Attr(str, "", doc="session id of the writer that has it open (empty: none)")
    writer_region = Attr(str, "", doc="region of that writer")

    @query
    def versions(self) -> Iterator[ImageVersion]:
        return self.children(ImageVersion)

    @action(undo="end_write", device=False)
    def begin_write(self, *, session: str, region: str) -> Undo:
        if self.writer:
            raise ModelError(
                f"{self.path} is open for writing by session {self.writer} in {self.writer_region}: "
                "a second writer is refused (one writer at a time)",
                path=self.path,
            )
        self.writer, self.writer_region = session, region
        return undo(session=session)

    @action(undo="begin_write", device=False)
    def end_write(self, *, session: str) -> Undo:
        if self.writer != session:
            raise ModelError(f"{self.path} is not open for writing by session {session}", path=self.path)
        region = self.writer_region
        self.writer, self.writer_region = "", ""
        return undo(session=session, region=region)

    @action(undo="unpublish", device=False)
    def publish(
        self, *, version: int, digest: str, size_mib: int, region: str, replica: str, published_at: float
    ) -> Undo:
        """Make ``version`` (its data at ``replica`` in ``region``) the latest: opens from now on see it."""
        if version != self.next_version:
            raise ModelError(
                f"{self.path}: the next version is {self.next_version}, not {version}", path=self.path
            )
        old_latest = self.latest
        self.add_child(
            ImageVersion,
            version_name(version),
            version=version,
            digest=digest,
            size_mib=size_mib,
            published_at=published_at,
            replicas={region: replica},
        )
        self.latest = version
        self.next_version = version + 1
        return undo(version=version, latest=old_latest)

    @action(undo="publish", device=False)
    def unpublish(self, *, version: int, latest: int) -> Undo:
        v = self.child(version_name(version), ImageVersion)
        spec = v.snapshot()
        self.remove_child(version_name(version))
        self.latest = latest
        self.next_version = version
        region, replica = next(iter(spec["replicas"].items()))
        return undo(
            version=version,
            digest=spec["digest"],
            size_mib=spec["size_mib"],
            region=region,
            replica=replica,
            published_at=spec["published_at"],
        )

    @action(undo="restore_version", device=False)
    def collect_version(self, *, version: int) -> Undo:
        """Forget an old version (its replicas are removed by the same transaction)."""
        v = self.child(version_name(version), ImageVersion)
        if version == self.latest:
            raise ModelError(f"{v.path} is the latest version: it is never collected", path=v.path)
        if v.readers:
            raise ModelError(f"{v.path} is open by {', '.join(v.readers)}: it is in use", path=v.path)
        if v.replicas:
            raise ModelError(f"{v.path} still has replicas in {', '.join(sorted(v.replicas))}", path=v.path)
        spec = v.snapshot()
        self.remove_child(version_name(version))
        return undo(spec=spec)

    @action(undo="collect_version", device=False)
    def restore_version(self, *, spec: Value) -> Undo:
        self.add_child(ImageVersion, version_name(int(spec["version"])), **spec)
        return undo(version=int(spec["version"]))


class ImageVersion(Resource):
    """A published version: its metadata, where its data is, and who has it open."""

    kind = "image_version"
    version = Attr(int)
    digest = Attr(str, doc="digest of the data (e.g. sha256:...)")
    size_mib = Attr(int, doc="size of the data, MiB")
    published_at = Attr(float, 0.0, doc="when its writer closed it (Unix seconds)")
    replicas = Attr(dict, {}, doc="region path -> image path of the data there")
    readers = Attr(list, [], doc="session ids that have this version open")

    @action(undo="remove_reader", device=False)
    def add_reader(self, *, session: str) -> Undo:
        if session in self.readers:
            raise ModelError(f"session {session} already has {self.path} open", path=self.path)
        self.readers = [*self.readers, session]
        return undo(session=session)

    @action(undo="add_reader", device=False)
    def remove_reader(self, *, session: str) -> Undo:
        if session not in self.readers:
            raise ModelError(f"session {session} does not have {self.path} open", path=self.path)
        self.readers = [s for s in self.readers if s != session]
        return undo(session=session)

    @action(undo="remove_replica", device=False)
    def add_replica(self, *, region: str, image: str, transfer_s: float = 0.0, source: str = "") -> Undo:
        """Record that ``region`` holds the data at ``image`` (copied from ``source`` in ``transfer_s``)."""
        if region in self.replicas:
            raise ModelError(f"{self.path} already has a replica in {region}", path=self.path)
        self.replicas = {**self.replicas, region: image}
        return undo(region=region)

    @action(undo="add_replica", device=False)
    def remove_replica(self, *, region: str) -> Undo:
        if region not in self.replicas:
            raise ModelError(f"{self.path} has no replica in {region}", path=self.path)
        image = self.replicas[region]
        self.replicas = {r: p for r, p in self.replicas.items() if r != region}
        return undo(region=region, image=image)


for _cls in (ImageRoot, GeoImage, ImageVersion):
    STANDARD.register(_cls)


def in_use(view: View, v: ImageVersion) -> list[str]:
    """Why ``v`` may not be collected: the sessions that have it open, the volumes cloned from it (hence
    the VMs on them). Empty: nothing needs it (``gc_image`` and the autopilot's ``image-gc`` read this)."""
    why = [f"open by {s}" for s in v.readers]
    for replica in v.replicas.values():
        san = view.get(replica.rsplit("/", 1)[0], StorageHost)
        why += [f"backs {vol.path}" for vol in san.children(Volume) if vol.image == replica]
    return why
