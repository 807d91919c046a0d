"""``tropic bench soak`` on a fresh 3-server ZooKeeper ensemble on loopback (fsync on), with the ensemble's
znode count and approximate data size (from the leader's ``mntr``) added to every slice.

    .venv/bin/python benchmarks/soak_zk.py --txns 200000 --retain 20K --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tropic.retention import Retention
from tropic.scenario.soak import SoakSpec, run_soak
from zkharness import ZooKeeperEnsemble, find_zookeeper, four_letter


def mntr(ensemble: ZooKeeperEnsemble) -> dict[str, float]:
    """The leader's znode count and approximate data size (bytes)."""
    leader = ensemble.leader()
    if leader is None:
        return {}
    out: dict[str, float] = {}
    for line in four_letter(ensemble.client_port(leader), "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key in ("zk_znode_count", "zk_approximate_data_size"):
            out[key.removeprefix("zk_")] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txns", type=int, default=200_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--retain", help="run a retention thread as the leader does, e.g. '20K'")
    parser.add_argument("--retain-interval", type=float, default=10.0, help="seconds between its passes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    install = find_zookeeper()
    if install is None:
        print("ZooKeeper is not installed: run scripts/install-zookeeper.sh", file=sys.stderr)
        return 2
    policy = Retention.parse(args.retain) if args.retain else None
    with ZooKeeperEnsemble(install=install, heap_mb=512) as ensemble, tempfile.TemporaryDirectory() as tmp:
        ensemble.start_all(timeout=120)
        spec = SoakSpec(
            txns=args.txns,
            store=ensemble.uri("/soak"),
            slices=args.slices,
            retain=policy,
            archive=Path(tmp) / "archive",
            retain_interval=args.retain_interval,
        )
        result = run_soak(spec, probe=lambda: mntr(ensemble))
    result["ensemble"] = {"servers": 3, "address": "127.0.0.1 (loopback)", "force_sync": True, "heap_mb": 512}
    rows = result["slices"]
    if rows and "znode_count" in rows[0]:
        result["znode_count_first"] = rows[0]["znode_count"]
        result["znode_count_last"] = rows[-1]["znode_count"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in rows:
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
