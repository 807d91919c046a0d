"""Drivers: the physical layer, one uniform contract with interchangeable backends."""

from tropic.drivers.base import ComputeDriver, Driver, NetworkDriver, Step, StorageDriver
from tropic.drivers.sim import Fault, SimDriver

__all__ = ["ComputeDriver", "Driver", "Fault", "NetworkDriver", "SimDriver", "Step", "StorageDriver"]
