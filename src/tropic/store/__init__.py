"""Persistence of transaction records, the input queue and the logical model."""

from tropic.store.base import MemoryStore, Restored, Store

__all__ = ["MemoryStore", "Restored", "Store"]
