"""Transactions: states, records, procedures, simulation, locks and the controller."""

from tropic.txn import stdprocs as stdprocs  # registers the standard procedures
from tropic.txn.controller import Controller, Counters
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.procedures import REGISTRY, Procedure, Registry, procedure
from tropic.txn.record import StepOutcome, Transaction
from tropic.txn.simulate import Simulation, simulate
from tropic.txn.states import FINAL, TRANSITIONS, State, move
from tropic.txn.worker import Executor, LocalExecutor, replay, rollback, run_step

__all__ = [
    "FINAL",
    "REGISTRY",
    "TRANSITIONS",
    "Controller",
    "Counters",
    "Executor",
    "LocalExecutor",
    "LockSet",
    "LockTable",
    "Procedure",
    "Registry",
    "Simulation",
    "State",
    "StepOutcome",
    "Transaction",
    "move",
    "procedure",
    "replay",
    "rollback",
    "run_step",
    "simulate",
]
