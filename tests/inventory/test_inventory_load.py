"""Inventory files: both examples load and build a model; TOML and YAML read alike; a bad file is refused
with every problem naming the file, the line and the field, and nothing is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.inventory import InventoryError, build_model, dumps, fleet_of_tree, load, loads, tree_of_model
from tropic.model import audit

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "examples" / "inventory-sim.toml"
LIBVIRT = REPO / "examples" / "inventory-libvirt.toml"

HEAD = """\
[[regions]]
name = "us-east"
location = "us-east-1"

[[hosts]]
name = "kvm-1"
region = "us-east"
cpus = 4
memory_mib = 4096

[[storage]]
name = "san-1"
region = "us-east"
images = [ { name = "img-ubuntu" } ]
"""


def refused(tmp_path: Path, text: str, name: str = "fleet.toml") -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InventoryError) as e:
        load(path)
    return [str(p) for p in e.value.problems]


def test_the_sim_example_builds_a_model_without_violations() -> None:
    inv = load(SIM)
    model = build_model(inv)
    assert audit(model) == []
    host = model.nodes["/compute/us-east/kvm-1"].attrs
    assert (host["cpus"], host["driver"], host["labels"], host["failure_domain"]) == (
        16,
        "sim",
        {"tier": "web"},
        "rack-1",
    )
    assert model.nodes["/compute/us-east"].attrs["timezone"] == "America/New_York"
    assert model.nodes["/storage/eu-west"].kind == "region"
    vm = model.nodes["/compute/us-east/kvm-1/web-1"].attrs
    assert vm["volume"] == "/storage/us-east/san-1/vol-web-1"
    assert model.nodes["/storage/us-east/san-1/vol-web-1"].attrs["exported"] is True
    assert "/storage/us-east/san-1/vol-web-1" in host["volumes"] and "web-1" in host["configs"]
    assert model.nodes["/compute/us-east/kvm-2/batch-1"].attrs["state"] == "stopped"
    assert model.nodes["/network/us-east/router-1"].attrs["next_hop"] == "/network/us-east/router-2"


def test_the_libvirt_example_builds_with_the_capacity_devices_tell() -> None:
    inv = load(LIBVIRT)
    with pytest.raises(InventoryError, match=r"inventory-libvirt.toml:\d+: hosts\[0\].cpus: .*kvm-1"):
        build_model(inv)  # nobody told kvm-1's capacity
    model = build_model(inv, {("lab", "kvm-1"): (16, 32768)})
    assert audit(model) == []
    host = model.nodes["/compute/lab/kvm-1"].attrs
    assert (host["driver"], host["uri"], host["cpus"]) == ("libvirt", "test:///default", 16)


def test_a_model_reads_back_as_the_same_fleet_in_toml_and_yaml() -> None:
    inv = load(SIM)
    fleet = fleet_of_tree(tree_of_model(build_model(inv)))
    for fmt in ("toml", "yaml"):
        again = loads(dumps(fleet, fmt), fmt, f"out.{fmt}")
        assert fleet_of_tree(tree_of_model(build_model(again))) == fleet


BAD = [
    # (what, text appended to HEAD, expected "line: field: message" start)
    (
        "unknown field",
        '[[hosts]]\nname = "kvm-2"\nregion = "us-east"\ncpus = 4\nmemory = 4\n',
        "20: hosts[1].memory:",
    ),
    ("wrong type", '[[hosts]]\nname = "kvm-2"\nregion = "us-east"\ncpus = "4"\n', "19: hosts[1].cpus:"),
    ("duplicate name", '[[hosts]]\nname = "kvm-1"\nregion = "us-east"\ncpus = 4\n', "17: hosts[1].name:"),
    (
        "unknown driver",
        '[[hosts]]\nname = "kvm-2"\nregion = "us-east"\ndriver = "xen"\n',
        "19: hosts[1].driver:",
    ),
    ("unknown region", '[[hosts]]\nname = "kvm-2"\nregion = "eu"\ncpus = 4\n', "18: hosts[1].region:"),
    (
        "capacity below its VMs",
        '[[vms]]\nname = "big"\nhost = "kvm-1"\nvcpus = 2\nmemory_mib = 8192\n',
        "9: hosts[0].memory_mib:",
    ),
    (
        "unknown image",
        '[[vms]]\nname = "a"\nhost = "kvm-1"\nvcpus = 1\nmemory_mib = 64\nimage = "san-1/img-x"\n',
        "21: vms[0].image:",
    ),
    (
        "unknown next hop",
        '[[networks]]\nname = "n"\nrouters = [\n  { name = "r1" },\n  { name = "r2", next_hop = "r9" },\n]\n',
        "20: networks[0].routers[1].next_hop:",
    ),
    ("bad name", '[[networks]]\nname = "Net_1"\n', "17: networks[0].name:"),
    ("syntax", "[[hosts]\nname = 1\n", "16: TOML syntax:"),
]


@pytest.mark.parametrize(("what", "extra", "expected"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_names_file_line_and_field(tmp_path: Path, what: str, extra: str, expected: str) -> None:
    problems = refused(tmp_path, HEAD + "\n" + extra)
    assert problems[0].startswith(f"{tmp_path / 'fleet.toml'}:{expected}"), problems


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    """Type errors all at once; when the types are right, every reference and capacity problem at once."""
    text = HEAD + '\n[[hosts]]\nname = "kvm-2"\nregion = "us-east"\ncpus = "4"\n'
    text += '\n[[networks]]\nname = "n"\ncidr = 1\n'
    problems = refused(tmp_path, text)
    assert len(problems) == 2 and ":23: networks[0].cidr:" in problems[1], problems
    text = HEAD + '\n[[hosts]]\nname = "kvm-1"\nregion = "nowhere"\ncpus = 4\nmemory_mib = 1\n'
    problems = refused(tmp_path, text)
    assert [p.split(": ")[1] for p in problems] == ["hosts[1].region"], problems
    text = HEAD + '\n[[hosts]]\nname = "kvm-1"\nregion = "us-east"\ncpus = 4\nmemory_mib = 1\n'
    text += '\n[[networks]]\nname = "n"\nrouters = [ { name = "a", next_hop = "a" } ]\n'
    problems = refused(tmp_path, text)
    assert [p.split(": ")[1] for p in problems] == ["hosts[1].name", "networks[0].routers[0].next_hop"]


def test_yaml_errors_name_the_line_too(tmp_path: Path) -> None:
    text = (
        "regions:\n  - name: us-east\nhosts:\n  - name: kvm-1\n    region: us-east\n    cpus: 4\n"
        "    memory_mib: 1024\n    colour: blue\n"
    )
    problems = refused(tmp_path, text, "fleet.yaml")
    assert problems == [f"{tmp_path / 'fleet.yaml'}:8: hosts[0].colour: unknown field"]
    dup = refused(tmp_path, "regions:\n  - name: a\n    name: b\n", "dup.yml")
    assert dup[0].startswith(f"{tmp_path / 'dup.yml'}:3: regions[0].name: given twice")
    syntax = refused(tmp_path, "regions: [\n  - a\n", "bad.yaml")
    assert syntax[0].startswith(f"{tmp_path / 'bad.yaml'}:") and "YAML syntax" in syntax[0]


def test_unknown_file_kinds_and_missing_files_are_one_clear_error(tmp_path: Path) -> None:
    assert "unknown format" in refused(tmp_path, "x", "fleet.json")[0]
    with pytest.raises(InventoryError, match="cannot read"):
        load(tmp_path / "missing.toml")


KEYS = ["name", "region", "cpus", "memory_mib", "uri", "failure_domain"]


@given(
    order=st.permutations(KEYS),
    blank=st.lists(st.booleans(), min_size=6, max_size=6),
    bad=st.sampled_from(KEYS),
)
def test_the_line_of_a_bad_field_is_where_it_is_written(
    order: list[str], blank: list[bool], bad: str
) -> None:
    """However a host's keys are ordered and spaced, the error names the line that holds the bad one."""
    good = {"name": '"kvm-2"', "region": '"us-east"', "cpus": "4", "memory_mib": "64", "uri": '""'}
    good["failure_domain"] = '"r"'
    lines = [*HEAD.splitlines(), "", "[[hosts]]"]
    expected = 0
    for key, gap in zip(order, blank, strict=True):
        if gap:
            lines.append("# a comment")
        lines.append(f"{key} = {'[1]' if key == bad else good[key]}")
        if key == bad:
            expected = len(lines)
    with pytest.raises(InventoryError) as e:
        loads("\n".join(lines) + "\n", "toml", "f.toml")
    assert str(e.value.problems[0]).startswith(f"f.toml:{expected}: hosts[1].{bad}:")


def test_any_toml_layout_reads_alike_and_names_its_lines() -> None:
    """Sub-tables, arrays of tables inside arrays, dotted keys and multi-line arrays: the same fleet, and a
    bad field's line wherever it is written."""
    text = """\
[[regions]]
name = "us-east"
labels.tier = "prod"

[[hosts]]
name = "kvm-1"
region = "us-east"
cpus = 4
memory_mib = 4096

[hosts.labels]
tier = "web"

[[storage]]
name = "san-1"
region = "us-east"

[[storage.images]]
name = "img-a"

[[storage.images]]
name = "img-b"
size_gib = 2

[[networks]]
name = "n"
routers = [
  # a comment, then elements and a trailing comma
  { name = "r1", next_hop = "r2" },
  { name = "r2" },
]
"""
    inv = loads(text, "toml", "f.toml")
    assert inv.fleet.hosts[0].labels == {"tier": "web"} and inv.fleet.regions[0].labels == {"tier": "prod"}
    assert [i.name for i in inv.fleet.storage[0].images] == ["img-a", "img-b"]
    assert inv.fleet.networks[0].routers[0].next_hop == "r2"
    cases = {
        ('tier = "web"', "tier = 1"): "f.toml:12: hosts[0].labels.tier:",
        ("size_gib = 2", 'size_gib = "2"'): "f.toml:23: storage[0].images[1].size_gib:",
        ('next_hop = "r2" }', 'next_hop = "r9" }'): "f.toml:29: networks[0].routers[0].next_hop:",
        ('labels.tier = "prod"', "labels.tier = false"): "f.toml:3: regions[0].labels.tier:",
    }
    for (old, new), expected in cases.items():
        with pytest.raises(InventoryError) as e:
            loads(text.replace(old, new), "toml", "f.toml")
        assert str(e.value.problems[0]).startswith(expected), (expected, e.value.problems)


def test_a_cordoned_host_keeps_the_vms_the_file_puts_on_it() -> None:
    text = SIM.read_text().replace(
        'failure_domain = "rack-1"', 'failure_domain = "rack-1"\ncordoned = true', 1
    )
    model = build_model(loads(text, "toml", "f.toml"))
    host = model.nodes["/compute/us-east/kvm-1"].attrs
    assert host["cordoned"] is True and "web-1" in host["configs"]
    assert audit(model) == []  # no "new placement on a cordoned host": web-1 was there when it was cordoned
