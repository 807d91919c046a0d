"""Durable submissions over HTTP against the engine itself, side by side in one run.

The API: a real ``tropic serve`` (its own process, SQLite store, sim driver, fsynced audit log) on
loopback; the load comes from another process, 16 concurrent keep-alive HTTP/1.1 connections driven by
one asyncio loop over raw sockets (a lean client, so it leaves the server as much of the 2 cores as it
can). Each single submission carries an ``Idempotency-Key`` (as the Python client and the CLI send); the
batch run posts ``POST /v1/transactions:batch`` requests with a key per item.

The engine: the same spawns, on the same initial model and store kind, submitted in process by 16 threads
with the same acknowledgement as the 202 (``Controller.submit(durable=True)``: the submission is in the
store), one call at a time, then in the same batches (``submit_many(durable=True)``).

Two rates per side, both from the first request:

- ``per_s`` (the headline, as the engine's "durable txn/s" elsewhere in docs/benchmarks.md): transactions
  *done* per second, the clock stopping when the last of them is final (the API side polls
  ``GET /v1/stats``). This is the rate either side sustains: the execution of the spawns is inside it.
- ``accept_per_s``: submissions *accepted* per second, the clock stopping at the last answer. The engine's
  is a burst: its threads accept faster than its workers execute, and the backlog runs after its clock
  stops; the API's acceptance competes with the execution of what it accepted.

p50/p99 are per request (a batch counts once). ``ratio`` is api / engine of the same mode and rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tropic.model.generate import DatacenterSpec, build_datacenter, host_path, image_path
from tropic.service.embedded import open_embedded

TOKEN = "bench-operator-token-0123456789abcdef"
PROFILE: str | None = None  # --profile: run the server under py-spy (profiling only, not a dependency)
SPEC = DatacenterSpec(hosts_per_region=8, host_cpus=4096, host_memory_mib=1 << 24)


def spawns(count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` one-vCPU spawns spread over every host of :data:`SPEC`."""
    hosts = [(r, i) for r in SPEC.regions for i in range(1, SPEC.hosts_per_region + 1)]
    out = []
    for n in range(count):
        region, i = hosts[n % len(hosts)]
        out.append(
            {
                "host": host_path(region, i),
                "name": f"{tag}-{n}",
                "image": image_path(region),
                "vcpus": 1,
                "memory_mib": 256,
            }
        )
    return out


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def summary(count: int, accepted: float, done: float, lat: list[float]) -> dict[str, Any]:
    return {
        "per_s": round(count / done, 1),
        "accept_per_s": round(count / accepted, 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
    }


def new_store(path: Path) -> str:
    """A SQLite store initialised with :data:`SPEC` (then closed): what both sides start from."""
    uri = f"sqlite:///{path}"
    open_embedded(uri, initial=lambda: build_datacenter(SPEC)).close()
    return uri


# --- the engine --------------------------------------------------------------------------------------------
def run_engine(
    workdir: Path, calls: list[dict[str, Any]], clients: int, batch: int, tag: str
) -> dict[str, float]:
    emb = open_embedded(new_store(workdir / f"engine-{tag}.db"))
    c = emb.controller.start()
    try:
        chunks = [calls[i : i + batch] for i in range(0, len(calls), batch)]
        lat: list[float] = []
        lock = threading.Lock()
        it = iter(chunks)

        def client() -> None:
            while True:
                with lock:
                    chunk = next(it, None)
                if chunk is None:
                    return
                t0 = time.perf_counter()
                if batch == 1:
                    c.submit("spawn_vm", chunk[0], submitter="bench", durable=True)
                else:
                    c.submit_many([("spawn_vm", a) for a in chunk], submitter="bench", durable=True)
                took = time.perf_counter() - t0
                with lock:
                    lat.append(took)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = time.perf_counter() - start
        c.drain(600)
        done = time.perf_counter() - start
        return summary(len(calls), accepted, done, lat)
    finally:
        emb.close()


# --- the load generator (its own process) -------------------------------------------------------------------
async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: str, body: bytes = b""
) -> tuple[bytes, bytes]:
    """One HTTP/1.1 exchange on a keep-alive connection: the status line and the body."""
    writer.write(head.encode() + b"\r\n" + body)
    status = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def finished(port: int) -> int:
    """How many transactions the server has seen become final (``GET /v1/stats``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = f"GET /v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        _, data = await request(reader, writer, head)
    finally:
        writer.close()
    counters = json.loads(data)["counters"]
    return int(counters["committed"] + counters["aborted"] + counters["failed"])


async def drive(
    port: int, bodies: list[bytes], keyed: bool, path: str, clients: int, count: int
) -> dict[str, Any]:
    """Send ``bodies`` over ``clients`` keep-alive connections, then wait until ``count`` transactions
    are final; both times, the latencies and the first error, if any."""
    queue = list(reversed(bodies))
    lat: list[float] = []
    errors: list[str] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                body = queue.pop()
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                )
                if keyed:
                    head += f"Idempotency-Key: {uuid.uuid4().hex}\r\n"
                t0 = time.perf_counter()
                status, data = await request(reader, writer, head, body)
                lat.append(time.perf_counter() - t0)
                if b" 202 " not in status and not errors:
                    errors.append(f"{status.decode().strip()}: {data[:300].decode(errors='replace')}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    accepted = time.perf_counter() - start
    cpu_s = time.process_time()
    deadline = time.monotonic() + 600
    while not errors and await finished(port) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    done = time.perf_counter() - start
    return {"accepted": accepted, "done": done, "lat": lat, "errors": errors, "cpu_s": cpu_s}


def drive_main(argv: list[str]) -> None:
    port, path, keyed, clients, count = int(argv[0]), argv[1], argv[2] == "1", int(argv[3]), int(argv[4])
    bodies = [line.encode() for line in sys.stdin.read().splitlines()]
    print(json.dumps(asyncio.run(drive(port, bodies, keyed, path, clients, count))))


# --- the API -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_api(
    workdir: Path, calls: list[dict[str, Any]], clients: int, batch: int, tag: str
) -> dict[str, float]:
    store = new_store(workdir / f"api-{tag}.db")
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps([{"name": "bench", "token": TOKEN, "role": "operator"}]))
    port = free_port()
    exe = Path(sys.executable).with_name("tropic")
    server = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--store",
            store,
            "--tokens",
            str(tokens),
            "--audit",
            str(workdir / f"audit-{tag}"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--reconcile-interval",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"tropic serve did not start: {server.stderr.read().decode()}"
                    ) from None
                time.sleep(0.1)
        spy = None
        if PROFILE is not None:
            spy_exe = str(Path(sys.executable).with_name("py-spy"))
            out = f"{PROFILE}-{tag}.txt"
            spy = subprocess.Popen(
                [
                    spy_exe,
                    "record",
                    "--gil",
                    "--nonblocking",
                    "-r",
                    "100",
                    "-f",
                    "raw",
                    "-o",
                    out,
                    "--pid",
                    str(server.pid),
                ]
            )
            time.sleep(1)
        if batch == 1:
            lines = [json.dumps({"procedure": "spawn_vm", "args": a}) for a in calls]
            path = "/v1/transactions"
        else:
            lines = [
                json.dumps(
                    {
                        "items": [
                            {"procedure": "spawn_vm", "args": a, "key": uuid.uuid4().hex}
                            for a in calls[i : i + batch]
                        ]
                    }
                )
                for i in range(0, len(calls), batch)
            ]
            path = "/v1/transactions:batch"
        cpu0 = _cpu_s(server.pid)
        done = subprocess.run(
            [
                *(sys.executable, __file__, "--drive", str(port), path),
                *("1" if batch == 1 else "0", str(clients), str(len(calls))),
            ],
            input="\n".join(lines),
            capture_output=True,
            text=True,
            check=True,
        )
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        server_cpu = _cpu_s(server.pid) - cpu0
        result = json.loads(done.stdout)
        if result["errors"]:
            raise RuntimeError(f"the API refused a submission: {result['errors'][0]}")
        out = summary(len(calls), result["accepted"], result["done"], result["lat"])
        # Where the 2 cores went: CPU per submission in the server and in the load generator.
        out["server_cpu_ms"] = round(server_cpu / len(calls) * 1000, 3)
        out["client_cpu_ms"] = round(result["cpu_s"] / len(calls) * 1000, 3)
        out["server_cpu_share"] = round(server_cpu / result["done"], 2)
        return out
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        drive_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description="REST submission throughput vs the engine, side by side")
    parser.add_argument("--count", type=int, default=3000, help="spawns per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients / engine threads")
    parser.add_argument("--batch", type=int, default=50, help="items per batch request in the batch run")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each run; the median is reported")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--profile", metavar="PREFIX", help="record the server with py-spy into PREFIX-*.txt")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    out: dict[str, Any] = {
        "count": args.count,
        "clients": args.clients,
        "batch": args.batch,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="tropic-api-bench-") as tmp:
        work = Path(tmp)
        for mode, batch in (("single", 1), ("batch", args.batch)):
            engine, api = [], []
            for r in range(args.rounds):
                calls = spawns(args.count, f"{mode}{r}")
                engine.append(run_engine(work, calls, args.clients, batch, f"{mode}{r}"))
                api.append(run_api(work, calls, args.clients, batch, f"{mode}{r}"))
            e = sorted(engine, key=lambda x: x["per_s"])[len(engine) // 2]
            a = sorted(api, key=lambda x: x["per_s"])[len(api) // 2]
            out[mode] = {
                "api_per_s": a["per_s"],
                "engine_per_s": e["per_s"],
                "ratio": round(a["per_s"] / e["per_s"], 2),
                # the acceptance burst (see the module docstring): submissions answered per second
                "api_accept_per_s": a["accept_per_s"],
                "engine_accept_per_s": e["accept_per_s"],
                "accept_ratio": round(a["accept_per_s"] / e["accept_per_s"], 2),
                "p50_ms": a["p50_ms"],
                "p99_ms": a["p99_ms"],
                "server_cpu_ms": a["server_cpu_ms"],
                "client_cpu_ms": a["client_cpu_ms"],
                "server_cpu_share": a["server_cpu_share"],
                "engine_p50_ms": e["p50_ms"],
                "engine_p99_ms": e["p99_ms"],
                # every round, side by side: (api_per_s, engine_per_s, ratio, accept_ratio)
                "rounds": [
                    [
                        x["per_s"],
                        y["per_s"],
                        round(x["per_s"] / y["per_s"], 2),
                        round(x["accept_per_s"] / y["accept_per_s"], 2),
                    ]
                    for x, y in zip(api, engine, strict=True)
                ],
            }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for mode in ("single", "batch"):
        m = out[mode]
        print(
            f"{mode}: API {m['api_per_s']:.0f}/s (p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms), "
            f"engine {m['engine_per_s']:.0f}/s done: ratio {m['ratio']}; "
            f"accepted: API {m['api_accept_per_s']:.0f}/s, engine {m['engine_accept_per_s']:.0f}/s, "
            f"ratio {m['accept_ratio']}"
        )


if __name__ == "__main__":
    main()
