"""``tropic optimize``: run the optimizer on generated or trace data and report the answer.

A thin shell over :mod:`tropic.optimize`: rich tables for people, ``--json`` for scripts, progress on
stderr while a solver runs, and every :class:`~tropic.errors.TropicError` shown as one line (exit code 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tropic.cli import output
from tropic.cli.target import Token, Url, exactly_one
from tropic.errors import ConfigError, InvalidArguments, TropicError
from tropic.optimize import (
    ExecutionReport,
    OverlaySolution,
    PlacementObjective,
    ProgressEvent,
    SolverSettings,
    compare_placement,
    diff_placements,
    execute_plan,
    generate_psepr,
    generated_batch,
    make_hosts,
    solve_overlay,
    solve_overlay_bruteforce,
    solve_placement,
    trace_batch,
)
from tropic.optimize.actuator import StepOutcome, StepRunner
from tropic.optimize.model_adapter import ControllerRunner, controller_problem, model_problem, regions
from tropic.optimize.overlay_bruteforce import MAX_CANDIDATES
from tropic.optimize.placement import PlacementProblem
from tropic.optimize.placement_solve import STRATEGIES
from tropic.optimize.plan import PlannedStep
from tropic.optimize.workloads import (
    AZURE_TRACE_DIR,
    DEFAULT_IMAGE,
    HOST_MEMORY_MIB,
    HOST_VCPUS,
    TENANT_MAX_PER_HOST,
    Batch,
)
from tropic.owner import Holder
from tropic.service.embedded import open_embedded
from tropic.store.registry import parse_store_uri

app = typer.Typer(
    help="Constraint-optimization placement on CP-SAT: overlay selection and VM placement.",
    no_args_is_help=True,
)

_out = output.console


@contextmanager
def _user_errors() -> Iterator[None]:
    """Show a tropic error as one line on stderr and exit with its code, never with a traceback."""
    try:
        yield
    except TropicError as exc:
        output.fail(
            exc, code=output.exit_code(exc) if exc.code == "unreachable" else output.ExitCode.BAD_INPUT
        )


@contextmanager
def _progress(what: str, enabled: bool) -> Iterator[Callable[[ProgressEvent], None] | None]:
    """A spinner with elapsed time and the best objective so far (on stderr, so --json stays clean)."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(what)

        def report(event: ProgressEvent) -> None:
            best = "" if event.best is None else f", best {event.best:.6g}"
            bar.update(task, description=f"{what} ({event.phase}{best}, limit {event.limit_s:g} s)")

        yield report


def _solution_dict(sol: OverlaySolution) -> dict[str, Any]:
    out: dict[str, Any] = {"status": sol.status.value, "solve_s": round(sol.solve_s, 4), "method": sol.method}
    ev = sol.evaluation
    if ev is None:
        out["chosen"] = []
        out["objective"] = None
        return out
    out.update(
        {
            "chosen": list(ev.chosen),
            "objective": float(ev.objective),
            "objective_exact": str(ev.objective),
            "utility": float(ev.utility),
            "cost": float(ev.cost),
            "added": list(ev.added),
            "removed": list(ev.removed),
            "diameter_ms": float(ev.metrics["diameter"]),
            "fixed_distance_ms": float(ev.metrics["fixed_distance"]),
        }
    )
    return out


@app.command()
def psepr(
    candidates: Annotated[int, typer.Option(help="Number of generated candidate nodes.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the generated node data.")] = 0,
    bruteforce: Annotated[
        bool, typer.Option(help=f"Also search exhaustively (at most {MAX_CANDIDATES} candidates).")
    ] = False,
    diameter_max: Annotated[float, typer.Option(help="DiameterMax of the path constraint, in ms.")] = 300.0,
    time_limit: Annotated[float, typer.Option(help="CP-SAT time limit in seconds.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Rhizoma's PsEPR overlay on generated PlanetLab-like node data."""
    with _user_errors():
        if bruteforce and candidates > MAX_CANDIDATES:
            raise InvalidArguments(
                f"--bruteforce is limited to {MAX_CANDIDATES} candidates (got {candidates}): "
                f"2^{candidates} subsets would take too long"
            )
        settings = SolverSettings(time_limit_s=time_limit)
        inst = generate_psepr(candidates, seed, diameter_max_ms=Fraction(str(diameter_max)))
        with _progress("CP-SAT", not as_json) as report:
            sol = solve_overlay(inst.problem, settings, report)
        exhaustive = solve_overlay_bruteforce(inst.problem) if bruteforce else None
        result: dict[str, Any] = {
            "candidates": candidates,
            "seed": seed,
            "eligible": len(inst.problem.eligible()),
            "current": list(inst.current),
            "fixed": list(inst.fixed),
            "diameter_max_ms": diameter_max,
            **_solution_dict(sol),
        }
        if exhaustive is not None:
            result["bruteforce"] = {**_solution_dict(exhaustive), "subsets": exhaustive.explored}
            result["matches_bruteforce"] = exhaustive.objective == sol.objective
        if as_json:
            output.emit_json(result)
            return
        _print_psepr(result)


def _print_psepr(r: dict[str, Any]) -> None:
    _out.print(
        f"PsEPR: {r['candidates']} candidates (seed {r['seed']}), {r['eligible']} pass the node constraint; "
        f"DiameterMax {r['diameter_max_ms']:g} ms"
    )
    table = Table("method", "status", "nodes", "objective", "utility", "cost", "diameter", "solve")
    rows = [r] + ([r["bruteforce"]] if "bruteforce" in r else [])
    for row in rows:
        if row["objective"] is None:
            table.add_row(row["method"], row["status"], "-", "-", "-", "-", "-", f"{row['solve_s']:.3f} s")
            continue
        table.add_row(
            row["method"],
            row["status"],
            str(len(row["chosen"])),
            f"{row['objective']:.6f}",
            f"{row['utility']:.6f}",
            f"{row['cost']:.3f}",
            f"{row['diameter_ms']:.1f} ms",
            f"{row['solve_s']:.3f} s",
        )
    _out.print(table)
    if r["objective"] is not None:
        _out.print(f"chosen: {', '.join(r['chosen'])}")
        _out.print(f"added: {', '.join(r['added']) or '-'}; removed: {', '.join(r['removed']) or '-'}")
    if "matches_bruteforce" in r:
        verdict = "[green]matches[/green]" if r["matches_bruteforce"] else "[red]DIFFERS FROM[/red]"
        _out.print(f"CP-SAT optimum {verdict} the exhaustive optimum")


@app.command()
def placement(
    vms: Annotated[int, typer.Option(help="Number of VMs in the batch.")] = 1000,
    hosts: Annotated[int, typer.Option(help="Number of hosts available.")] = 150,
    arrivals: Annotated[
        Path | None,
        typer.Option(
            help=f"Azure trace arrivals.txt (or its directory), e.g. {AZURE_TRACE_DIR}/arrivals.txt."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated batch (without --arrivals).")] = 0,
    host_vcpus: Annotated[int, typer.Option(help="vCPUs per host.")] = HOST_VCPUS,
    host_memory_gib: Annotated[int, typer.Option(help="Memory per host in GiB.")] = HOST_MEMORY_MIB // 1024,
    tenant_max_per_host: Annotated[
        int, typer.Option(help="Anti-affinity: at most this many VMs of one tenant batch per host.")
    ] = TENANT_MAX_PER_HOST,
    strategy: Annotated[str, typer.Option(help=f"One of {', '.join(STRATEGIES)}.")] = "auto",
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 10.0,
    show_plan: Annotated[
        bool, typer.Option(help="Also print the procedures that create the placement.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Place the batch on the hosts (and beside the VMs) of the server at this URL, read through "
            "its API, instead of on --hosts generated hosts. Cordoned hosts are left out.",
        ),
    ] = None,
    token: Token = None,
    image: Annotated[
        str, typer.Option(help="With --url: the image path the new VMs' spawn_vm steps name.")
    ] = DEFAULT_IMAGE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Place a VM batch with CP-SAT and compare with first-fit-decreasing and Nova's filter-and-weigh.

    With --url the hosts and the running VMs are the server's (running VMs may move, at the migration
    cost); nothing is submitted: --show-plan lists the transactions that would create the placement."""
    with _user_errors():
        if tenant_max_per_host < 1:
            raise InvalidArguments("--tenant-max-per-host must be at least 1")
        batch = trace_batch(arrivals, vms) if arrivals is not None else generated_batch(vms, seed)
        if url is None:
            fleet = make_hosts(hosts, vcpus=host_vcpus, memory_mib=host_memory_gib * 1024)
            problem = batch.problem(fleet, max_per_host=tenant_max_per_host)
            where: dict[str, Any] = {
                "hosts": hosts,
                "host_vcpus": host_vcpus,
                "host_memory_gib": host_memory_gib,
            }
        else:
            problem = _server_problem(url, token, batch, image, tenant_max_per_host)
            where = {"url": url, "hosts": len(problem.hosts), "running_vms": len(problem.current)}
        settings = SolverSettings(time_limit_s=time_limit, seed=seed)
        with _progress("placing", not as_json) as report:
            comparison = compare_placement(problem, settings, report, strategy=strategy)
        result: dict[str, Any] = {
            "source": batch.source,
            **where,
            "tenant_max_per_host": tenant_max_per_host,
            **comparison.to_dict(),
        }
        steps = []
        if show_plan:
            target = comparison.placement.assignment
            steps = diff_placements(
                problem.current, target, {v.name: v for v in problem.vms}, {h.path: h for h in problem.hosts}
            )
            result["plan"] = [s.to_dict() for s in steps]
        if as_json:
            output.emit_json(result)
            return
        _print_placement(result)
        for step in steps:
            _out.print(f"  {step}", highlight=False)


def _server_problem(
    url: str, token: str | None, batch: Batch, image: str, max_per_host: int
) -> PlacementProblem:
    """The batch (renamed ``new-NNNNNN`` so it cannot clash with the server's VMs) on the server's hosts,
    beside the VMs running there, as read through its API."""
    from tropic.service.remote import fetch_model, open_client

    renamed = {v.name: f"new-{i:06d}" for i, v in enumerate(batch.vms)}
    new = Batch(
        tuple(replace(v, name=renamed[v.name], image=image) for v in batch.vms),
        tuple(tuple(renamed[n] for n in t) for t in batch.tenants),
        batch.source,
    )
    with open_client(url, token) as client:
        model = fetch_model(client, "/compute")
    return model_problem(model, new_vms=new.vms, constraints=new.constraints(max_per_host=max_per_host))


def _print_placement(r: dict[str, Any]) -> None:
    if "url" in r:
        _out.print(
            f"{r['vms']} VMs ({r['running_vms']} running, the rest from {r['source']}) on the {r['hosts']} "
            f"hosts of {r['url']} that are not cordoned; lower bound {r['lower_bound']} hosts"
        )
    else:
        _out.print(
            f"{r['vms']} VMs from {r['source']} on up to {r['hosts']} hosts of {r['host_vcpus']} vCPU / "
            f"{r['host_memory_gib']} GiB; lower bound {r['lower_bound']} hosts"
        )
    table = Table("scheduler", "hosts", "unplaced", "vs lower bound")
    lb = r["lower_bound"] or 1

    def gap(hosts: int | None) -> str:
        return "-" if hosts is None else f"+{(hosts - lb) / lb:.1%}"

    table.add_row(f"CP-SAT ({r['method']})", str(r["hosts_cp"]), "0", gap(r["hosts_cp"]))
    table.add_row(r["ffd_method"], str(r["hosts_ffd"] or "-"), str(r["unplaced_ffd"]), gap(r["hosts_ffd"]))
    table.add_row(
        "filter-weigh (Nova)",
        str(r["hosts_filter_weigh"] or "-"),
        str(r["unplaced_filter_weigh"]),
        gap(r["hosts_filter_weigh"]),
    )
    _out.print(table)
    saving = r["fewer_hosts_than_ffd"]
    if saving is not None:
        _out.print(f"CP-SAT uses {saving:.1%} fewer hosts than first-fit-decreasing")
    _out.print(f"status {r['status']}, gap to bound {r['gap_to_bound']:.2%}, solved in {r['solve_s']:.2f} s")


@app.command()
def rebalance(
    store: Annotated[
        str | None,
        typer.Option(help="Embedded store (sqlite path or URI) to rebalance; owned while this runs."),
    ] = None,
    url: Url = None,
    token: Token = None,
    execute: Annotated[
        bool, typer.Option(help="Run the plan as transactions (default: only show it).")
    ] = False,
    host_cost: Annotated[int, typer.Option(help="Objective weight of each host in use.")] = 10,
    migration_cost: Annotated[int, typer.Option(help="Objective weight of each migration.")] = 1,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 10.0,
    across_regions: Annotated[bool, typer.Option(help="Allow migrations between regions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Consolidate the VMs of a model onto fewer hosts: show the plan of migrations, and with --execute
    submit each step as a transaction (each still checked by the transaction layer).

    --store plans on a store this process opens (refused while a server holds it); --url plans on the
    model of the server that holds it and submits the migrations through its API."""
    with _user_errors():
        exactly_one(store, url)
        objective = PlacementObjective(host_cost, migration_cost)
        settings = _Rebalance(objective, time_limit, across_regions, execute, as_json)
        if store is not None:
            result, steps = _rebalance_store(store, settings)
        else:
            assert url is not None
            result, steps = _rebalance_remote(url, token, settings)
        if as_json:
            output.emit_json(result)
            raise typer.Exit(0 if result.get("execution", {"ok": True})["ok"] else 1)
        _out.print(
            f"{result['vms']} VMs on {result['hosts_before']} hosts -> {result['hosts_after']} hosts "
            f"(lower bound {result['lower_bound']}) with {result['migrations']} migrations, "
            f"{result['status']} in {result['solve_s']:.2f} s"
        )
        for step in steps:
            _out.print(f"  {step}", highlight=False)
        if not execute:
            _out.print("plan only; run again with --execute to apply it" if steps else "nothing to do")
            return
        if not result["execution"]["ok"]:
            raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class _Rebalance:
    objective: PlacementObjective
    time_limit: float
    across_regions: bool
    execute: bool
    quiet: bool


def _rebalance_store(store: str, how: _Rebalance) -> tuple[dict[str, Any], list[PlannedStep]]:
    """Plan (and run) on a store this process owns for the while."""
    path = parse_store_uri(store).path
    if path is not None and not path.exists():
        raise ConfigError(f"{path}: no such store", path=str(path))
    emb = open_embedded(store, holder=Holder.current(command="tropic optimize rebalance"))
    try:
        controller = emb.controller.start()
        controller.drain(60)  # queued transactions first: plan against the settled model
        # Live migration stays within a region unless asked otherwise: one problem per region.
        scopes: list[str | None] = [None]
        if not how.across_regions:
            scopes = list(controller.call(lambda: regions(controller.model)))
        problems = [controller_problem(controller, region=r, objective=how.objective) for r in scopes]
        result, steps = _plan(problems, how)
        result["store"] = store
        if how.execute:
            result["execution"] = _execute(steps, ControllerRunner(controller), how.quiet).to_dict()
    finally:
        emb.close()
    return result, steps


def _rebalance_remote(
    url: str, token: str | None, how: _Rebalance
) -> tuple[dict[str, Any], list[PlannedStep]]:
    """Plan on the model of the server at ``url`` and run the plan through its API."""
    from tropic.service.remote import ApiRunner, fetch_model, open_client

    with open_client(url, token) as client:
        model = fetch_model(client, "/compute")
        scopes: list[str | None] = [None] if how.across_regions else list(regions(model))
        problems = [model_problem(model, region=r, objective=how.objective) for r in scopes]
        result, steps = _plan(problems, how)
        result["url"] = url
        if how.execute:
            result["execution"] = _execute(steps, ApiRunner(client), how.quiet).to_dict()
    return result, steps


def _plan(problems: list[PlacementProblem], how: _Rebalance) -> tuple[dict[str, Any], list[PlannedStep]]:
    """Solve each problem (a region, or all together) and turn the placements into migrations."""
    steps: list[PlannedStep] = []
    summary = {"vms": 0, "hosts_before": 0, "hosts_after": 0, "lower_bound": 0, "migrations": 0}
    statuses: list[str] = []
    solve_s = 0.0
    with _progress("rebalancing", not how.quiet) as report:
        for problem in problems:
            limit = SolverSettings(time_limit_s=max(0.1, how.time_limit / max(1, len(problems))))
            placement = solve_placement(problem, limit, report)
            steps += diff_placements(
                problem.current,
                placement.assignment,
                {v.name: v for v in problem.vms},
                {h.path: h for h in problem.hosts},
            )
            summary["vms"] += len(problem.vms)
            summary["hosts_before"] += len(set(problem.current.values()))
            summary["hosts_after"] += placement.hosts_used
            summary["lower_bound"] += placement.lower_bound
            summary["migrations"] += placement.migrations
            statuses.append(placement.status.value)
            solve_s += placement.solve_s
    status = "optimal" if all(s == "optimal" for s in statuses) else "feasible"
    result: dict[str, Any] = {
        "regions": "all together" if how.across_regions else "each on its own",
        **summary,
        "status": status,
        "solve_s": round(solve_s, 3),
        "plan": [s.to_dict() for s in steps],
    }
    return result, steps


def _execute(steps: list[PlannedStep], runner: StepRunner, quiet: bool) -> ExecutionReport:
    if quiet or not steps:
        return execute_plan(steps, runner)
    with Progress(
        TextColumn("executing"), BarColumn(), MofNCompleteColumn(), console=output.err_console
    ) as bar:
        task = bar.add_task("plan", total=len(steps))

        def tick(i: int, outcome: StepOutcome) -> None:
            bar.update(task, completed=i + 1)
            if not outcome.committed:
                output.err_console.print(f"[red]{outcome.state}[/] {outcome.step}: {outcome.error}")

        return execute_plan(steps, runner, on_step=tick)
