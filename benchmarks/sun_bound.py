"""How much can following the sun gain on the shipped demand? The exhaustive bound (``tropic.sun.bound``)
on each matrix, demand, read fraction and member count of the sweep: the exact static optimum, and every
15-minute step in its own best placement, moved for free and at once. ``ceiling`` is the largest
reduction of the mean perceived latency *any* strategy can reach there; the sweep's ``max_ceiling`` is
the largest over every case.

    python benchmarks/sun_bound.py --json [--latency FILE] [--data DIR] [--members 1,3,5]

Needs ``../shared/data`` (or ``--data``); prints one JSON document, a line of progress per case on
stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from tropic.sun.bound import bound
from tropic.sun.run import SunSpec, load_inputs

# The derived matrices of docs/benchmarks.md ("Follow the sun"): regions removed from the AWS one.
WITHOUT = {
    "full AWS": (),
    "no east Asia": (
        "ap-east-1,ap-southeast-7,ap-southeast-5,ap-southeast-1,ap-southeast-3,ap-northeast-2,ap-northeast-3"
    ),
    "no Europe but Ireland": (
        "eu-central-1,eu-central-2,eu-west-2,eu-west-3,eu-south-1,eu-south-2,eu-north-1"
    ),
    "one region per North American area": "us-east-2,us-west-1,ca-central-1,ca-west-1,mx-central-1",
}
DEMANDS = {
    "time-zone bands": ("wikipedia_edits_2011-08-31_by_lonband.csv", ()),
    "continents": ("wikipedia_edits_2011-08-31_by_continent.csv", ()),
    "North America and Asia": ("wikipedia_edits_2011-08-31_by_continent.csv", ("NA", "AS")),
}
READS = (0.0, 0.5, 0.9, 1.0)
SMOOTH_H = (3, 1)  # the default 3-hour moving average, and the raw hourly counts


def _names(text: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(text, tuple):
        return text
    return tuple(n for n in text.split(",") if n)


def sweep(latency: Path, data: Path, members: list[int]) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for matrix_name, without in WITHOUT.items():
        for demand_name, (file, clients) in DEMANDS.items():
            for n, reads, smooth_h in itertools.product(members, READS, SMOOTH_H):
                spec = SunSpec(
                    latency=latency,
                    demand=data / "demand" / file,
                    read_fraction=reads,
                    smooth_h=smooth_h,
                    without=_names(without),
                    clients=clients,
                )
                _, _, matrix, demand = load_inputs(spec)
                start = time.perf_counter()
                b = bound(matrix, demand, members=n, capacity=n)
                took = time.perf_counter() - start
                case = {
                    "matrix": matrix_name,
                    "regions": len(matrix.regions),
                    "demand": demand_name,
                    "members": n,
                    "read_fraction": reads,
                    "smooth_h": smooth_h,
                    **b.to_dict(),
                    "seconds": round(took, 2),
                }
                cases.append(case)
                print(
                    f"{matrix_name} / {demand_name} / {n} members / reads {reads} / smooth {smooth_h} h: "
                    f"ceiling {100 * b.ceiling():.1f}% ({took:.1f} s)",
                    file=sys.stderr,
                )
    top = max(cases, key=lambda c: float(c["ceiling_vs_best_static"]))
    return {
        "latency": str(latency),
        "step_min": 15,
        "cases": cases,
        "max_ceiling": top["ceiling_vs_best_static"],
        "max_ceiling_case": {k: top[k] for k in ("matrix", "demand", "members", "read_fraction", "smooth_h")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="The reference data directory.")
    ap.add_argument("--latency", default=None, help="Default: DATA/latency/aws-cloudping-p50.json.")
    ap.add_argument("--members", default="1,3,5", help="Comma-separated member counts.")
    ap.add_argument("--json", action="store_true", help="Print JSON (the only output format).")
    args = ap.parse_args()
    data = Path(args.data)
    latency = Path(args.latency) if args.latency else data / "latency" / "aws-cloudping-p50.json"
    if not (data / "demand").is_dir() or not latency.exists():
        sys.exit(f"sun_bound: needs {data}/demand and {latency} (the reference data); not found")
    members = [int(n) for n in args.members.split(",") if n]
    print(json.dumps(sweep(latency, data, members), indent=2))


if __name__ == "__main__":
    main()
