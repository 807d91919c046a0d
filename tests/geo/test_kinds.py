"""The follow-the-sun kinds in the standard schema: the registered root has every module's root actions
(services, jobs, overlay, links, image catalog), the registered host has the live migration, and the
device actions are the ones drivers implement (the overlay's addresses and the live migration)."""

from __future__ import annotations

from tropic.drivers.base import ACTIONS
from tropic.model import MODEL_ONLY_ACTIONS, STANDARD


def test_the_registered_root_and_host_have_every_modules_actions() -> None:
    root = STANDARD.cls("root").actions
    for name in ("add_service_root", "add_job_root", "add_overlay_root", "add_links", "add_image_root"):
        assert name in root, name
        assert name in MODEL_ONLY_ACTIONS
    host = STANDARD.cls("host").actions
    assert {"live_migrate", "migrate", "create_config", "cordon"} <= set(host)


def test_geo_device_actions_and_model_only_records() -> None:
    assert {"live_migrate", "add_address", "remove_address", "switch_address"} <= ACTIONS
    catalog = {"publish", "unpublish", "begin_write", "end_write", "add_reader", "remove_reader"}
    assert catalog | {"add_replica", "remove_replica", "take_index", "add_group"} <= MODEL_ONLY_ACTIONS
    kinds = {"address_group", "address", "overlay", "links", "geo_image", "image_version"}
    assert kinds <= set(STANDARD.kinds)
