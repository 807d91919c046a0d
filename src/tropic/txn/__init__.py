"""Transactions: states, records, procedures, simulation, locks and the controller."""

from tropic.procedures import REGISTRY, Procedure, Registry, procedure
from tropic.records import FINAL, TRANSITIONS, State, StepOutcome, Transaction, move
from tropic.txn.controller import Controller, Counters
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.simulate import Simulation, simulate
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
