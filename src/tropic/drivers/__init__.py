"""Drivers: the physical layer, one uniform contract with interchangeable backends."""

from tropic.drivers.base import ComputeDriver, Driver, NetworkDriver, Step, StorageDriver
from tropic.drivers.router import RouterDriver
from tropic.drivers.sim import Fault, SimDriver

__all__ = [
    "ComputeDriver",
    "Driver",
    "Fault",
    "NetworkDriver",
    "RouterDriver",
    "SimDriver",
    "Step",
    "StorageDriver",
]
