"""PsEPR overlay selection: CP-SAT solve times by candidate count, and agreement with exhaustive search.

Run: ``.venv/bin/python benchmarks/optimize_psepr.py``; prints one JSON document.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

from tropic.optimize import SolverSettings, generate_psepr, solve_overlay, solve_overlay_bruteforce


def main() -> None:
    settings = SolverSettings(time_limit_s=20)
    agreement: dict[str, Any] = {"instances": 0, "agree": 0, "cp_s": [], "bruteforce_s": []}
    for seed in range(50):
        problem = generate_psepr(14, seed).problem
        cp = solve_overlay(problem, settings)
        bf = solve_overlay_bruteforce(problem)
        agreement["instances"] += 1
        agreement["agree"] += int(cp.objective == bf.objective and cp.status is bf.status)
        agreement["cp_s"].append(cp.solve_s)
        agreement["bruteforce_s"].append(bf.solve_s)
    agreement["cp_median_s"] = round(statistics.median(agreement.pop("cp_s")), 4)
    agreement["bruteforce_median_s"] = round(statistics.median(agreement.pop("bruteforce_s")), 4)

    scaling = []
    for n in (30, 50, 100, 200):
        for seed in range(3):
            inst = generate_psepr(n, seed)
            sol = solve_overlay(inst.problem, settings)
            row = {
                "candidates": n,
                "seed": seed,
                "eligible": len(inst.problem.eligible()),
                "status": sol.status.value,
                "objective": None if sol.objective is None else float(sol.objective),
                "nodes": len(sol.chosen),
                "solve_s": round(sol.solve_s, 3),
            }
            print(row, file=sys.stderr)
            scaling.append(row)
    print(
        json.dumps(
            {
                "benchmark": "optimize_psepr",
                "time_limit_s": 20,
                "agreement_n14": agreement,
                "scaling": scaling,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
