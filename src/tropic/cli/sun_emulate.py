"""``tropic sun --emulate``: the three strategies' days replayed on a real ZooKeeper ensemble behind a
delay proxy (:mod:`tropic.sun.emulate`), measured latency next to the model's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from tropic.cli import output

if TYPE_CHECKING:
    from tropic.sun.run import SunResult


def check_options(time_scale: float, steps: int, dilation: float) -> None:
    """Refuse bad ``--emulate`` options before anything runs (exit status 2)."""
    if time_scale <= 0 or steps < 1 or dilation < 1:
        output.fail(
            f"sun --emulate: --time-scale must be > 0 (got {time_scale:g}), --emulate-steps >= 1 "
            f"(got {steps}), --dilation >= 1 (got {dilation:g})"
        )


def emulate(
    result: SunResult, *, time_scale: float, steps: int, dilation: float, quiet: bool
) -> dict[str, Any]:
    """Run the emulation of ``result``'s days; progress on stderr; the report as plain data."""
    from tropic.cluster.zk_ensemble import ZooKeeperHarnessError
    from tropic.sun.emulate import EmulateOptions, run
    from tropic.sun.planner import migration

    check_options(time_scale, steps, dilation)
    demand = result.demand
    count = len(demand.rate)
    emulated = min(steps, count)
    config = result.spec.config
    options = EmulateOptions(
        step_seconds=demand.step_s * count / emulated / time_scale,
        max_steps=emulated,
        dilation=dilation,
        downtime_s=lambda a, b: migration(config, result.matrix, a, b).downtime_s,  # the planner's own
    )

    def say(line: str) -> None:
        if not quiet:
            output.err_console.print(line, highlight=False, soft_wrap=True)

    try:
        report = run(result.matrix, demand, result.days, options=options, progress=say)
    except ValueError as e:
        output.fail(f"sun --emulate: {e}")
    except (ZooKeeperHarnessError, TimeoutError, RuntimeError, OSError) as e:
        output.fail(f"sun --emulate: the emulated run failed: {e}", code=output.ExitCode.NOT_DONE)
    data = report.to_json()
    data["time_scale"] = time_scale
    data["dilation"] = dilation
    return data


def print_table(data: object) -> None:
    assert isinstance(data, dict)
    table = Table(title=f"emulated: {data['members']} ZooKeeper servers, {len(data['steps'])} steps")
    for col in ("strategy", "model ms", "measured ms", "error", "+service", "migrations", "pause s"):
        table.add_column(col, justify="right")
    for row in data["strategies"]:
        table.add_row(
            row["strategy"],
            f"{row['model_mean_ms']:.1f}",
            f"{row['measured_mean_ms']:.1f}",
            f"{100 * row['error']:+.1f}%",
            f"{100 * row['error_plus_service']:+.1f}%",
            str(row["migrations"]),
            f"{row['pause_s']:.2f}",
        )
    output.console.print(table)
    same = "the same" if data["same_ranking"] else "NOT the same"  # ties in the model left aside
    output.console.print(
        f"ranking {same} as the model's ({' < '.join(data['ranking_measured'])}); "
        f"service time with no delay {data['extra']['service_mean_ms']:.1f} ms"
    )
