"""The follow-the-sun commands against a real server: ``tropic image publish|versions|list|gc`` and
``tropic member list|migrate``, with a service's members and addresses in ``tropic describe``."""

from __future__ import annotations

import json

from api_harness import OPERATOR, VIEWER, Server
from typer.testing import CliRunner

from tropic.cli.main import app

runner = CliRunner()


def cli(server: Server, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token])
    return result.exit_code, result.stdout, result.stderr


def submit(server: Server, *args: str) -> None:
    code, out, err = cli(server, "submit", *args)
    assert code == 0, out + err


def test_images_and_members_from_the_command_line(server: Server, tmp_path: object) -> None:
    submit(server, "create_image", "name=web", "region=us-east")
    data = tmp_path / "web.img"  # type: ignore[operator]
    data.write_bytes(b"x" * (3 << 20))
    code, out, err = cli(server, "image", "publish", "web", "--region", "us-east", "--file", str(data))
    assert code == 0, out + err
    code, out, _ = cli(
        server, "image", "publish", "web", "--region", "eu-west", "--digest", "sha256:2", "--size-mib", "5"
    )
    assert code == 0, out
    code, out, _ = cli(server, "image", "versions", "web", "--json", token=VIEWER)
    rows = json.loads(out)
    assert [(r["version"], r["size_mib"], r["latest"]) for r in rows] == [(1, 3, False), (2, 5, True)]
    assert rows[0]["digest"].startswith("sha256:") and set(rows[1]["replicas"]) == {"eu-west"}
    code, out, _ = cli(server, "image", "list", token=VIEWER)
    assert code == 0 and "web" in out

    submit(server, "create_replicated_service", "name=web", "image=/images/web", "vcpus=1", "memory_mib=512")
    submit(server, "spawn_member", "service=web", "name=w1", "host=/compute/us-east/host-02")
    submit(server, "spawn_member", "service=web", "name=w2", "host=/compute/eu-west/host-02")
    code, out, _ = cli(server, "member", "list", "web", "--json", token=VIEWER)
    members = {m["vm"].rsplit("/", 1)[1]: m for m in json.loads(out)}
    ip = members["w1"]["address"]
    assert ip.startswith("100.64.") and members["w1"]["region"] == "us-east"

    code, out, err = cli(server, "member", "migrate", "web", "w1", "--region", "ap-south")
    assert code == 0, out + err
    code, out, _ = cli(server, "describe", "/services/web", "--json", token=VIEWER)
    moved = {m["address"]: m for m in json.loads(out)["members"]}
    assert moved[ip]["region"] == "ap-south"  # the same address, now in ap-south
    code, out, _ = cli(server, "describe", moved[ip]["vm"], "--json", token=VIEWER)
    procs = [t["procedure"] for t in json.loads(out)["transactions"]]
    assert procs[:1] == ["migrate_member"] and "spawn_member" in procs  # followed back to its spawn
    # the service's spread refuses a second member in eu-west: exit 1, the member stays
    code, _, err = cli(server, "member", "migrate", "web", "w1", "--region", "eu-west")
    assert code == 1 and ("members_spread" in err or "share region" in err)
    code, _, err = cli(server, "member", "migrate", "web", "w1")
    assert code == 2 and "--region" in err

    # a second writer is refused (exit 1), the catalog is unchanged
    submit(server, "open_image_write", "image=web", "region=us-east", "session=held")
    code, _, err = cli(
        server, "image", "publish", "web", "--region", "eu-west", "--digest", "d", "--size-mib", "1"
    )
    assert code == 1 and "second writer is refused" in err
    submit(server, "abort_image_write", "image=web", "session=held")
    code, out, err = cli(server, "image", "gc", "web")
    assert code == 0, out + err
    code, out, _ = cli(server, "image", "versions", "web", "--json", token=VIEWER)
    # version 1 went; version 2 backs the members' volumes and is the latest
    assert [r["version"] for r in json.loads(out)] == [2]
    code, _, err = cli(server, "image", "versions", "nope", token=VIEWER)
    assert code == 2 and "no image nope" in err
