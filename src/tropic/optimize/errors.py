"""Errors of the optimizer: every one derives from :class:`tropic.errors.TropicError`.

Bad problem descriptions are :class:`tropic.errors.InvalidArguments` (a user error); these classes cover what
only the solver can discover.
"""

from __future__ import annotations

from tropic.errors import TropicError


class OptimizeError(TropicError):
    """The optimizer could not produce an answer (root of this package's errors)."""

    code = "optimize_error"


class Infeasible(OptimizeError):
    """The constraints admit no solution; nothing was changed."""

    code = "infeasible"


class NoSolutionFound(OptimizeError):
    """The time limit ran out before any solution was found (the problem may still be feasible)."""

    code = "no_solution"
