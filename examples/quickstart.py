"""Quickstart: run procedures as transactions on a simulated datacenter.

python examples/quickstart.py
"""

from tropic import Controller, Fault, SimDriver, State, build_datacenter, project

model = build_datacenter()  # 3 regions x 4 hosts, a SAN with images, routers
devices = SimDriver(latency=0.01)  # simulated devices with their own state
devices.load(project(model))  # the devices start out matching the model

with Controller(model, devices) as controller:
    spawn = {
        "host": "/compute/us-east/host-01",
        "name": "web-1",
        "image": "/storage/us-east/san-1/img-ubuntu",
        "vcpus": 2,
        "memory_mib": 4096,
    }

    # Plan first: the exact action log apply would run, and nothing is touched.
    plan = controller.plan("spawn_vm", spawn)
    print("plan:", [a.action for a in plan.actions])

    # Apply: simulated, constraint-checked, locked, executed step by step.
    txn = controller.wait(controller.submit("spawn_vm", spawn), timeout=30)
    print("spawn:", txn.state.value)
    assert txn.state is State.COMMITTED

    # A VM too big for its host is refused before any device is touched.
    huge = controller.wait(controller.submit("spawn_vm", {**spawn, "name": "huge", "memory_mib": 10**6}), 30)
    assert huge.state is State.ABORTED and huge.violation is not None
    print("huge:", huge.state.value, "-", huge.violation.constraint, "on", huge.violation.path)

    # A device failure on the last step: the completed steps are undone in reverse.
    devices.inject(Fault(action="create_vm", match={"name": "flaky"}))
    flaky = controller.wait(controller.submit("spawn_vm", {**spawn, "name": "flaky"}), 30)
    assert flaky.state is State.ABORTED
    print("flaky:", flaky.state.value, "-", [("undo " if s.undo else "") + s.action for s in flaky.steps])

    report = controller.check()
    print("consistent:", report["consistent"], "orphans:", report["orphans"])
    assert report["consistent"] and not report["orphans"]
