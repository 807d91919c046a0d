"""The service: one place that puts store, driver, controller, reconciler and API together, for the
embedded and the ZooKeeper modes alike (:mod:`tropic.service.wiring`), and the embedded controller it
and the offline commands open (:mod:`tropic.service.embedded`)."""

from tropic.service.embedded import DEFAULT_STORE, Embedded, default_datacenter, open_embedded

__all__ = ["DEFAULT_STORE", "Embedded", "default_datacenter", "open_embedded"]
