"""Transaction records and their states: the data both the transaction layer and the stores speak.

This package sits below :mod:`tropic.txn` and :mod:`tropic.store`, so a store can persist records
without importing the controller that makes them.
"""

from tropic.records.query import TxnQuery
from tropic.records.record import StepOutcome, Transaction, key_id
from tropic.records.states import FINAL, LIVE, TRANSITIONS, State, move

__all__ = [
    "FINAL",
    "LIVE",
    "TRANSITIONS",
    "State",
    "StepOutcome",
    "Transaction",
    "TxnQuery",
    "key_id",
    "move",
]
