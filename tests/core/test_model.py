"""The logical model: typed attributes, actions with undo, copy-on-write views, deltas, constraints."""

from __future__ import annotations

import pytest

from core.helpers import small_dc
from tropic.errors import InvalidArguments, ModelError, ResourceExists, UnknownResource
from tropic.model import STANDARD, VM, Host, Model, Region, Volume, project
from tropic.scenario import host_path, image_path


def test_typed_attributes_and_tree(model: Model) -> None:
    h = model.get(host_path("r1", 1), Host)
    assert h.memory_mib == 16384 and h.cpus == 16
    assert model.children("/compute") == ["/compute/r1", "/compute/r2"]
    with pytest.raises(UnknownResource, match="is a host, not a vm"):
        model.get(host_path("r1", 1), VM)
    with pytest.raises(UnknownResource, match="no resource at /compute/r9"):
        model.get("/compute/r9")
    with pytest.raises(InvalidArguments, match="must be int"):
        model.add("/compute/r1/bad", Host, cpus="many", memory_mib=1)
    with pytest.raises(ResourceExists):
        model.add("/compute/r1", Region)


def test_writes_only_through_actions(model: Model) -> None:
    view = model.view()
    h = view.get(host_path("r1", 1), Host)
    with pytest.raises(ModelError, match="only be changed by an action"):
        h.memory_mib = 1
    with pytest.raises(ModelError, match="outside a transaction"):
        model.get(host_path("r1", 1), Host).volumes = []


def test_copy_on_write_and_revert(model: Model) -> None:
    before = project(model)
    view = model.view()
    san = view.get("/storage/r1/san-1")
    san.clone_image(image="img-ubuntu", volume="vol-a")  # type: ignore[attr-defined]
    view.get("/storage/r1/san-1/vol-a", Volume).export_volume()
    # the committed model has not changed until the view is applied
    assert "/storage/r1/san-1/vol-a" not in model
    assert [a.action for a in view.log] == ["clone_image", "export_volume"]
    assert view.log[0].undo_action == "delete_volume" and view.log[0].undo_args == {"volume": "vol-a"}
    delta = model.apply(view)
    assert model.get("/storage/r1/san-1/vol-a", Volume).exported is True
    model.revert(delta)
    assert project(model) == before


def test_revert_keeps_siblings_added_by_others(model: Model) -> None:
    """Child lists are reverted by inverse deltas: another transaction's sibling survives."""
    v1 = model.view()
    v1.get("/storage/r1/san-1").clone_image(image="img-ubuntu", volume="vol-1")  # type: ignore[attr-defined]
    d1 = model.apply(v1)
    v2 = model.view()
    v2.get("/storage/r1/san-1").clone_image(image="img-ubuntu", volume="vol-2")  # type: ignore[attr-defined]
    model.apply(v2)
    model.revert(d1)
    assert "/storage/r1/san-1/vol-2" in model and "/storage/r1/san-1/vol-1" not in model


def test_constraints_checked_on_touched_resources_and_ancestors() -> None:
    m = small_dc(memory_mib=4096)
    view = m.view()
    h = view.get(host_path("r1", 1), Host)
    h.create_config(name="x")
    assert view.check_constraints() == []
    view2 = m.view()
    san = view2.get("/storage/r1/san-1")
    san.clone_image(image="img-ubuntu", volume="vol-big")  # type: ignore[attr-defined]
    vol = view2.get("/storage/r1/san-1/vol-big", Volume)
    vol.export_volume()
    h2 = view2.get(host_path("r1", 1), Host)
    h2.import_volume(volume=vol.path)
    h2.create_vm(name="big", vcpus=1, memory_mib=8192, image=image_path("r1"), volume=vol.path)
    violations = view2.check_constraints()
    assert [(v.constraint, v.path) for v in violations] == [("Host.memory_fits", host_path("r1", 1))]


def test_constraint_check_cost_does_not_grow_with_model() -> None:
    """Incremental checking evaluates constraints only on touched resources and their ancestors."""
    evaluated: list[str] = []
    original = Host.memory_fits

    def counting(self: Host):  # type: ignore[no-untyped-def]
        evaluated.append(self.path)
        yield from original(self)

    kind = STANDARD.cls("host")  # the registered host class (extended by tropic.model.geo)
    for hosts in (2, 200):
        evaluated.clear()
        m = small_dc(hosts=hosts)
        spec = next(c for c in kind.constraints if c.name == "memory_fits")
        idx = kind.constraints.index(spec)
        patched = list(kind.constraints)
        patched[idx] = type(spec)("memory_fits", counting)
        saved = kind.constraints
        kind.constraints = tuple(patched)
        try:
            view = m.view()
            view.get(host_path("r1", 1), Host).create_config(name="x")
            view.check_constraints()
        finally:
            kind.constraints = saved
        assert evaluated == [host_path("r1", 1)]


def test_router_seed_rule() -> None:
    m = small_dc()
    view = m.view()
    view.get("/network/r1/router-1").set_next_hop(next_hop="/network/r1/router-2")  # type: ignore[attr-defined]
    [v] = view.check_constraints()
    assert v.constraint == "Router.primary_not_via_backup" and v.path == "/network/r1/router-1"
    assert "backup router" in v.message
