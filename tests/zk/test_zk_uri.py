"""``zk://`` URI parsing: what tropic accepts, and the errors it gives for what it refuses."""

from __future__ import annotations

import pytest

pytest.importorskip("kazoo", reason="kazoo is not installed")

from tropic.errors import ConfigError, TropicError
from tropic.retry import RetryPolicy
from tropic.store.zkclient import CONNECTION_RETRY, ZkAddress, kazoo_retry, parse_zk_uri


@pytest.mark.parametrize(
    ("uri", "hosts", "chroot"),
    [
        ("zk://127.0.0.1:2181/tropic", (("127.0.0.1", 2181),), "/tropic"),
        (
            "zk://a:1,b.example.com:2,c:3/tropic/prod",
            (("a", 1), ("b.example.com", 2), ("c", 3)),
            "/tropic/prod",
        ),
        ("zk://zk-1/tropic/", (("zk-1", 2181),), "/tropic"),
        ("zk://[::1]:2182,127.0.0.1:2183/t", (("::1", 2182), ("127.0.0.1", 2183)), "/t"),
        ("zk://h:1", (("h", 1),), "/"),
        ("ZK://h:1/", (("h", 1),), "/"),
    ],
)
def test_valid_uris(uri: str, hosts: tuple[tuple[str, int], ...], chroot: str) -> None:
    address = parse_zk_uri(uri)
    assert address == ZkAddress(hosts, chroot)
    found_hosts, found_chroot = address  # unpacks as (hosts, chroot)
    assert (found_hosts, found_chroot) == (hosts, chroot)
    assert parse_zk_uri(str(address)) == address  # str() is a canonical URI


def test_kazoo_host_strings() -> None:
    address = parse_zk_uri("zk://[::1]:2182,a:1/t/x")
    assert address.connect_string == "[::1]:2182,a:1"
    assert address.kazoo_hosts == "[::1]:2182,a:1/t/x"
    assert parse_zk_uri("zk://a:1").kazoo_hosts == "a:1"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("", "scheme must be 'zk://'"),
        ("sqlite:///x.db", "scheme must be 'zk://'"),
        ("127.0.0.1:2181/tropic", "scheme must be 'zk://'"),
        ("zk://", "no host given"),
        ("zk:///tropic", "no host given"),
        ("zk://h:abc/t", "port 'abc' of host 'h' is not a number"),
        ("zk://h:/t", "empty port"),
        ("zk://h:0/t", "out of range"),
        ("zk://h:70000/t", "out of range"),
        ("zk://a:1,,b:2/t", "stray comma"),
        ("zk://a:1,/t", "stray comma"),
        ("zk://a:1,a:1/t", "listed twice"),
        ("zk://:2181/t", "no host name"),
        ("zk://bad_host!:1/t", "invalid host name"),
        ("zk://a b:1/t", "invalid host name"),
        ("zk://::1:2181/t", "write IPv6 addresses as [addr]:port"),
        ("zk://[::1/t", "bad IPv6 host"),
        ("zk://[::1]x/t", "unexpected 'x'"),
        ("zk://user:pw@h:1/t", "credentials"),
        ("zk://h:1/t?x=1", "query strings"),
        ("zk://h:1//t", "empty path segment"),
        ("zk://h:1/a//b", "empty path segment"),
        ("zk://h:1/a/../b", "relative segment"),
        ("zk://h:1/zookeeper/t", "reserves"),
        ("zk://h:1/a\x01b", "control characters"),
    ],
)
def test_malformed_uris_are_config_errors(uri: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_zk_uri(uri)
    message = str(info.value)
    assert says in message
    assert repr(uri) in message  # names the URI
    assert "zk://host:port" in message  # and shows the expected form
    assert isinstance(info.value, TropicError)
    assert info.value.to_dict()["code"] == "config_error"


def test_retry_policy_maps_to_kazoo() -> None:
    retry = kazoo_retry(
        RetryPolicy(attempts=7, backoff_s=0.2, multiplier=3, jitter=0.1, max_backoff_s=2.0, deadline_s=9)
    )
    assert (
        retry.max_tries,
        retry.delay,
        retry.backoff,
        retry.max_jitter,
        retry.max_delay,
        retry.deadline,
    ) == (7, 0.2, 3, 0.1, 2.0, 9)


def test_an_unlimited_policy_retries_forever_in_kazoo() -> None:
    assert kazoo_retry(RetryPolicy(attempts=None, deadline_s=None)).max_tries == -1
    assert kazoo_retry(CONNECTION_RETRY).max_tries == -1
