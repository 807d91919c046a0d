"""Sensors: the sim plays a trace, libvirt reads real counters of its test hypervisor, the router asks each
backend, the policy sensors read demand, latency and price; failures leave subjects unread, never 0%."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING
from tropic.autopilot.base import CPU, MEMORY
from tropic.autopilot.regional import (
    demand_sample_path,
    latency_sample_path,
    load_demand,
    load_latency,
    load_prices,
)
from tropic.autopilot.sensors import (
    DemandSensor,
    LatencySensor,
    PriceSensor,
    UtilisationSensor,
    read_all,
)
from tropic.autopilot.traces import TracePlayer, parse_planetlab
from tropic.drivers import RouterDriver, SimDriver
from tropic.drivers.base import Stats, Step
from tropic.errors import ConfigError, DriverError
from tropic.model import Model, project

TRACE = parse_planetlab("vm,u0,u1\nx,10,90\ny,50,20\n", "t")
H1 = "/compute/r1/host-01"


def _by(obs: list, metric: str) -> dict[str, float]:  # type: ignore[type-arg]
    return {o.subject: o.value for o in obs if o.metric == metric}


def test_the_sim_plays_the_trace_per_vm_and_sums_it_per_host(fleet: tuple[Model, SimDriver]) -> None:
    model, sim = fleet
    player = TracePlayer(TRACE, start=0.0)
    sim.utilisation = player
    sensor = UtilisationSensor(sim, lambda: model)
    for now, sample in ((0.0, 0), (300.0, 1)):
        obs = sensor.read(now)
        assert all(o.at == now and o.source == "utilisation" for o in obs)
        cpu = _by(obs, CPU)
        expect = {
            f"{H1}/a": TRACE.rows[player.row_of("r1/a")][sample],
            f"{H1}/b": TRACE.rows[player.row_of("r1/b")][sample],
        }
        assert {k: cpu[k] for k in expect} == expect
        cores = expect[f"{H1}/a"] * 2 + expect[f"{H1}/b"] * 1
        assert cpu[H1] == pytest.approx(cores / 16)  # the host: its VMs' demand over its 16 CPUs
        assert cpu["/compute/r1/host-03"] == 0.0  # an empty host is read: idle, not unknown
        mem = _by(obs, MEMORY)
        assert mem[f"{H1}/a"] == 1.0 and mem[H1] == pytest.approx(4096 / 16384)
    assert sensor.errors == []


def test_without_a_trace_the_sim_reads_nothing_and_says_so(fleet: tuple[Model, SimDriver]) -> None:
    model, sim = fleet
    sensor = UtilisationSensor(sim, lambda: model)
    assert sensor.read(0.0) == []
    assert sensor.errors and "no reading of 6 host(s)" in sensor.errors[0]


def test_a_vm_the_trace_does_not_know_leaves_it_and_its_host_unread(fleet: tuple[Model, SimDriver]) -> None:
    model, sim = fleet

    class Partial:
        def cpu(self, key: str, now: float) -> float | None:
            return None if key == "r1/a" else 0.5

    sim.utilisation = Partial()
    cpu = _by(UtilisationSensor(sim, lambda: model).read(0.0), CPU)
    assert f"{H1}/a" not in cpu and H1 not in cpu  # unknown, not 0%
    assert cpu[f"{H1}/b"] == 0.5 and "/compute/r1/host-02" in cpu


def test_a_failing_driver_leaves_every_subject_unread(fleet: tuple[Model, SimDriver]) -> None:
    model, _ = fleet

    class Broken(SimDriver):
        def stats(self, hosts: object, now: float) -> Stats:
            raise DriverError("sim: device unreachable", path=H1)

    sensor = UtilisationSensor(Broken(), lambda: model)
    obs, failed = read_all([sensor, PriceSensor({"r1": 0.1})], 0.0)
    assert [o.metric for o in obs] == ["price"]  # the other sensor still reads
    assert sensor.errors == ["sim: sim: device unreachable"]
    assert failed == {}


def test_the_router_reads_each_backend(fleet: tuple[Model, SimDriver]) -> None:
    model, sim = fleet
    sim.utilisation = TracePlayer(TRACE)
    router = RouterDriver(sim).bind(model)
    cpu = _by(UtilisationSensor(router, lambda: model).read(0.0), CPU)
    assert f"{H1}/a" in cpu and "/compute/r2/host-01/d" in cpu


@pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)
def test_libvirt_counters_become_utilisation_between_two_readings(fleet: tuple[Model, SimDriver]) -> None:
    from drivers.kit import make_driver

    model, _ = fleet
    drv = make_driver("libvirt")
    try:
        drv.load(project(model))  # type: ignore[attr-defined]
        raw = drv.stats([H1], 0.0)
        assert raw[H1]["cpus"] > 0 and raw[f"{H1}/a"]["vcpus"] == 2.0 and "cpu_time_s" in raw[f"{H1}/a"]
        sensor = UtilisationSensor(drv, lambda: model)
        first = sensor.read(0.0)
        assert CPU not in {o.metric for o in first if o.subject == f"{H1}/a"}  # a counter needs two readings
        assert _by(first, MEMORY)[f"{H1}/a"] == 1.0
        cpu: dict[str, float] = {}
        for now in range(1, 200):  # the test hypervisor's CPU time follows the wall clock
            cpu = _by(sensor.read(float(now)), CPU)
            if f"{H1}/a" in cpu:
                break
        assert 0.0 <= cpu[f"{H1}/a"] <= 1.0 and 0.0 <= cpu["/compute/r2/host-01/d"] <= 1.0
        # The test node's CPU counters stand still: a host's figure is its VMs' demand over its CPUs.
        vcpus = {f"{H1}/a": 2, f"{H1}/b": 1}
        cores = sum(cpu[v] * n for v, n in vcpus.items())
        assert cpu[H1] == pytest.approx(cores / model.nodes[H1].attrs["cpus"])
        assert sensor.errors == []
        assert drv.stats(["/compute/nowhere/host-9"], 0.0) == {}
    finally:
        drv.close()


def test_demand_is_smoothed_and_played_on_the_given_clock() -> None:
    series = load_demand(demand_sample_path())
    sensor = DemandSensor(series, regions={"eu-west": "EU", "us-east": "NA"}, start=0.0, speed=1.0)
    at_10 = _by(sensor.read(10 * 3600.0), "demand")
    at_22 = _by(sensor.read(22 * 3600.0), "demand")
    assert at_10["region:eu-west"] > at_22["region:eu-west"]  # Europe peaks at 10 UTC
    assert at_22["region:us-east"] > at_10["region:us-east"]  # North America around 02 UTC
    halfway = _by(sensor.read(10.5 * 3600.0), "demand")["region:eu-west"]
    assert min(series.hourly["EU"][10:12]) <= halfway <= max(series.hourly["EU"][10:12])
    with pytest.raises(ConfigError, match="no demand for XX"):
        DemandSensor(series, regions={"r": "XX"})


def test_latency_and_price_sensors() -> None:
    matrix = load_latency(latency_sample_path())
    assert matrix[("us-east-1", "eu-west-1")] > matrix[("us-east-1", "us-east-1")]
    obs = LatencySensor(matrix, regions=["us-east-1", "eu-west-1"]).read(5.0)
    assert len(obs) == 4 and {o.metric for o in obs} == {"latency_ms"}
    assert "latency:us-east-1->eu-west-1" in {o.subject for o in obs}
    prices = load_prices({"aws": {"us-east-1": 0.04}, "gcp": {"europe-west1": 0.05}})
    assert _by(PriceSensor(prices).read(0.0), "price") == {
        "region:us-east-1": 0.04,
        "region:europe-west1": 0.05,
    }


def test_bad_policy_inputs_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    d = tmp_path / "demand.csv"
    d.write_text("utc_hour_iso,region_or_language,count\n2011-08-31T00:00:00Z,EU,12\n")
    with pytest.raises(ConfigError, match=r"demand.csv: EU has no count for UTC hour"):
        load_demand(d)
    d.write_text("utc_hour_iso,region_or_language,count\nyesterday,EU,12\n")
    with pytest.raises(ConfigError, match="line 2: 'yesterday' is not an ISO time"):
        load_demand(d)
    lat = tmp_path / "lat.json"
    lat.write_text('{"data": {"a": {"b": "far"}}}')
    with pytest.raises(ConfigError, match=r"data.a.b = 'far' is not a latency"):
        load_latency(lat)
    lat.write_text("{nope")
    with pytest.raises(ConfigError, match="line 1: not JSON"):
        load_latency(lat)
    toml = tmp_path / "prices.toml"
    toml.write_text("[prices.aws]\nus-east-1 = 0.04\n[prices.other]\nus-east-1 = 0.05\n")
    with pytest.raises(ConfigError, match="us-east-1 is priced twice"):
        load_prices(toml)
    toml.write_text('[prices]\nus-east-1 = "cheap"\n')
    with pytest.raises(ConfigError, match=r"prices\.toml: us-east-1 = 'cheap' is not a price"):
        load_prices(toml)
    toml.write_text("[prices]\nus-east-1 = 0.04\n")
    assert load_prices(toml) == {"us-east-1": 0.04}


@pytest.mark.realdata
def test_the_real_demand_and_latency_files_load() -> None:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not (root / "demand").is_dir():
        pytest.skip(f"reference data not found at {root} (optional; the shipped samples cover the rest)")
    series = load_demand(root / "demand" / "wikipedia_edits_2011-08-31_by_continent.csv")
    assert {"EU", "NA", "AS"} <= set(series.hourly)
    matrix = load_latency(root / "latency" / "aws-cloudping-p50.json")
    assert matrix[("us-east-1", "eu-west-1")] > 10


def test_a_shared_sim_reads_what_other_processes_did(tmp_path: Path, fleet: tuple[Model, SimDriver]) -> None:
    from tropic.drivers.sim_shared import SharedSimDriver

    model, _ = fleet
    leader = SharedSimDriver(tmp_path / "devices.db")
    worker = SharedSimDriver(tmp_path / "devices.db")
    try:
        leader.load(project(model))
        leader.utilisation = TracePlayer(TRACE)
        assert f"{H1}/z" not in leader.stats([H1], 0.0)
        worker.execute(Step(1, 0, H1, "create_vm", {"name": "z", "vcpus": 1, "memory_mib": 512}))
        assert f"{H1}/z" in leader.stats([H1], 0.0)
    finally:
        worker.close()
        leader.close()
