"""A counter service made highly available by tropic's replica wrapper, without importing tropic.

It speaks only the program protocol (one JSON request per line on stdin, one JSON reply per line on
stdout, in order, deterministically) and knows nothing of snapshots: it answers the wrapper's
``{"__tropic__": ...}`` control requests with an error like any unknown request, so the wrapper keeps
its log whole and a restarted replica replays it from the start. Requests:

* ``{"op": "incr", "name": N, "by": 1}`` -> ``{"value": <the counter after adding>}``
* ``{"op": "get", "name": N}`` -> ``{"value": <the counter, 0 when never incremented>}``
* ``{"op": "reset", "name": N}`` -> ``{"value": 0}``

Run it as a replica: ``python -m tropic.ha.replica --zk ZK_URI --job ctr --replica ctr-1 -- python3
counter.py``.
"""

import json
import sys


def main():
    counters = {}
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            reply = {"error": "a request is a JSON object"}
        else:
            op, name, by = request.get("op"), request.get("name"), request.get("by", 1)
            if not isinstance(name, str):
                reply = {"error": f"unknown request {request!r}"}
            elif op == "incr" and isinstance(by, int) and not isinstance(by, bool):
                counters[name] = counters.get(name, 0) + by
                reply = {"value": counters[name]}
            elif op == "get":
                reply = {"value": counters.get(name, 0)}
            elif op == "reset":
                counters[name] = 0
                reply = {"value": 0}
            else:
                reply = {"error": f"unknown request {request!r}"}
        print(json.dumps(reply, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
