"""Extending the model: a new resource kind with a typed attribute, an action paired with its undo, a
constraint, and a stored procedure that uses them. Its physical side is a tiny driver of its own.

    python examples/custom_resource.py
"""

from collections.abc import Iterator

from tropic import Controller, Model, Resource, State, action, constraint, undo
from tropic.drivers import Step
from tropic.drivers.sim import SimDriver
from tropic.model import STANDARD, Attr, ComputeRoot, Schema, Undo, View, project
from tropic.txn import Registry


class Firewall(Resource):
    kind = "firewall"
    max_rules = Attr(int, 3)
    rules = Attr(list, [])

    @action(undo="remove_rule")
    def add_rule(self, *, rule: str) -> Undo:
        self.rules = [*self.rules, rule]
        return undo(rule=rule)

    @action(undo="add_rule")
    def remove_rule(self, *, rule: str) -> Undo:
        self.rules = [r for r in self.rules if r != rule]
        return undo(rule=rule)

    @constraint
    def within_limit(self) -> Iterator[tuple[str, Resource]]:
        if len(self.rules) > self.max_rules:
            yield (f"{len(self.rules)} rules exceed the limit of {self.max_rules}", self)


schema = Schema(dict(STANDARD.kinds))
schema.register(Firewall)
procedures = Registry()


def open_port(view: View, *, firewall: str, port: int) -> None:
    """Allow inbound traffic on one port."""
    view.get(firewall, Firewall).add_rule(rule=f"allow tcp/{port}")


procedures.register(open_port)


class FirewallDevices(SimDriver):
    """The sim, plus firewall devices that remember their rules."""

    def __init__(self) -> None:
        super().__init__()
        self.firewalls: dict[str, list[str]] = {"/compute/fw": []}

    def execute(self, step: Step) -> None:
        if step.action == "add_rule":
            self.firewalls[step.path].append(str(step.args["rule"]))
        elif step.action == "remove_rule":
            self.firewalls[step.path].remove(str(step.args["rule"]))
        else:
            super().execute(step)


model = Model(schema)
model.add("/compute", ComputeRoot)
model.add("/compute/fw", Firewall, max_rules=2)
devices = FirewallDevices()
devices.load(project(model))

with Controller(model, devices, registry=procedures) as controller:
    results = [
        controller.wait(controller.submit("open_port", {"firewall": "/compute/fw", "port": p}), 30)
        for p in (22, 80, 443)
    ]
    print([t.state.value for t in results])
    assert [t.state for t in results] == [State.COMMITTED, State.COMMITTED, State.ABORTED]
    assert results[2].violation is not None and results[2].violation.constraint == "Firewall.within_limit"
    assert devices.firewalls["/compute/fw"] == ["allow tcp/22", "allow tcp/80"]
    print("third rule refused:", results[2].violation.message)
