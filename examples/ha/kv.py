"""A key-value store made highly available by tropic's replica wrapper, without importing tropic.

It speaks only the program protocol: one JSON request per line on stdin, one JSON reply per line on
stdout, in order, deterministically. Requests (``{"op": ...}``):

* ``{"op": "put", "key": K, "value": V}`` -> ``{"ok": true, "prev": <old value or null>}``
* ``{"op": "get", "key": K}`` -> ``{"value": <value or null>}``
* ``{"op": "append", "key": K, "value": V}`` -> ``{"value": <the string after appending V>}`` (strings
  only: V is concatenated to the key's value, "" when missing)
* ``{"op": "cas", "key": K, "expect": E, "value": V}`` -> ``{"ok": <swapped?>, "value": <value now>}``
* ``{"op": "delete", "key": K}`` -> ``{"ok": <was present?>}``
* ``{"op": "keys"}`` -> ``{"keys": [...]}``

and the wrapper's two control requests, so that the log can be truncated:
``{"__tropic__": "snapshot"}`` -> ``{"state": {...}}`` and ``{"__tropic__": "restore", "state": {...}}`` ->
``{"ok": true}``. Anything malformed gets ``{"error": ...}`` and changes nothing.

Run it as a replica: ``python -m tropic.ha.replica --zk ZK_URI --job kv --replica kv-1 -- python3 kv.py``.
"""

import json
import sys


def handle(data, request):
    control = request.get("__tropic__")
    if control == "snapshot":
        return {"state": data}
    if control == "restore":
        state = request.get("state")
        if not isinstance(state, dict):
            return {"error": "restore needs a state object"}
        data.clear()
        data.update(state)
        return {"ok": True}
    op = request.get("op")
    key = request.get("key")
    if op not in ("put", "get", "append", "cas", "delete", "keys"):
        return {"error": f"unknown op {op!r}"}
    if op == "keys":
        return {"keys": sorted(data)}
    if not isinstance(key, str):
        return {"error": f"{op!r} needs a string 'key'"}
    if op == "get":
        return {"value": data.get(key)}
    if op == "delete":
        return {"ok": data.pop(key, None) is not None}
    if "value" not in request:
        return {"error": f"{op!r} needs a 'value'"}
    value = request["value"]
    if op == "put":
        prev = data.get(key)
        data[key] = value
        return {"ok": True, "prev": prev}
    if op == "append":
        current = data.get(key)
        if current is None:
            current = ""
        if not isinstance(current, str) or not isinstance(value, str):
            return {"error": f"append needs a string value and key {key!r} to hold a string"}
        data[key] = current + value
        return {"value": data[key]}
    if data.get(key) == request.get("expect"):
        data[key] = value
        return {"ok": True, "value": value}
    return {"ok": False, "value": data.get(key)}


def main():
    data = {}
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError as exc:
            reply = {"error": f"not JSON: {exc}"}
        else:
            reply = handle(data, request) if isinstance(request, dict) else {"error": "not an object"}
        sys.stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
