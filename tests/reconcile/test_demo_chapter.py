"""`tropic demo` has a drift-and-repair chapter: out-of-band events are found, fenced, resolved by policy
or repaired, a hung call is rolled back at its deadline, and the summary is consistent."""

from __future__ import annotations

from tropic.scenario.demo import Demo


def test_demo_drift_chapter_ends_consistent() -> None:
    result = Demo(None, latency=0.01).run()
    summary = result.summary
    assert summary["consistent"] is True and summary["orphans"] == 0 and summary["violations"] == 0
    assert summary["drift_found"] >= 6 and summary["drift_resolved"] == summary["drift_found"]
    chapter = next(c for c in result.chapters if c["chapter"] == "drift")
    (hung,) = chapter["transactions"]
    assert hung["state"] == "ABORTED"
