"""Pydantic models of the REST API's requests and responses (they are the OpenAPI schema).

Transaction and resource data come from the engine's own ``to_dict`` forms; these models pin their shape
so clients (and the fuzzer) can rely on it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tropic.procedures import Registry
from tropic.records.states import State

StateName = Literal[
    "SUBMITTED", "DEFERRED", "STARTED", "ROLLING_BACK", "COMMITTED", "ABORTED", "FAILED", "KILLED"
]
assert set(StateName.__args__) == {s.value for s in State}  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ------------------------------------------------------------------------------------------------
class ErrorInfo(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. unknown_procedure, constraint_violation")
    message: str = Field(description="what went wrong, for people")
    path: str | None = Field(default=None, description="the resource concerned, when there is one")
    constraint: str | None = Field(default=None, description="the violated constraint, for violations")
    undo_error: dict[str, Any] | None = Field(default=None, description="a failed undo, for FAILED ones")
    problems: list[dict[str, Any]] | None = Field(default=None, description="each invalid request field")


class ErrorBody(BaseModel):
    error: ErrorInfo


# --- requests ----------------------------------------------------------------------------------------------
class ProcedureCall(_Strict):
    """A call of one registered procedure with named plain-data arguments (nothing here is code)."""

    procedure: str = Field(description="a registered procedure name (see GET /v1/procedures)", max_length=200)
    args: dict[str, Any] = Field(
        default_factory=dict, description="named arguments: strings, integers, numbers or booleans"
    )
    text_args: bool = Field(
        default=False,
        strict=True,
        description="true: string values are text to read as the declared types (a command line's "
        'name=value): "4" is 4 for an integer argument, "yes" is true for a boolean one',
    )


class BatchItem(ProcedureCall):
    """One call of a batch, with its own optional idempotency key."""

    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="an idempotency key for this item (as the Idempotency-Key header of a single call)",
    )


class BatchCall(_Strict):
    """Up to 1000 calls submitted together (validated together: one bad item refuses them all)."""

    items: list[BatchItem] = Field(min_length=1, max_length=1000)


# --- transactions ------------------------------------------------------------------------------------------
class Accepted(BaseModel):
    id: int
    state: StateName
    replayed: bool = Field(default=False, description="true when an idempotency key matched an earlier call")


class BatchItemAnswer(BaseModel):
    """A batch item's answer: its transaction, or (``error``) why its idempotency key was refused."""

    id: int | None = None
    state: StateName | None = None
    replayed: bool = False
    error: dict[str, Any] | None = None


class BatchAccepted(BaseModel):
    items: list[BatchItemAnswer]


class KillAccepted(BaseModel):
    id: int
    state: StateName
    kill_requested: bool


class UndoInfo(BaseModel):
    path: str
    action: str
    args: dict[str, Any]


class ActionInfo(BaseModel):
    path: str
    action: str
    args: dict[str, Any]
    kind: str
    touches: list[str]
    undo: UndoInfo


class StepInfo(BaseModel):
    index: int
    path: str
    action: str
    undo: bool
    status: str
    started: float
    finished: float
    error: dict[str, Any] | None = None


class ViolationInfo(BaseModel):
    constraint: str
    message: str
    path: str


class TransactionSummary(BaseModel):
    id: int
    procedure: str
    state: StateName
    submitter: str
    submitted_at: float | None = Field(description="Unix time the transaction was submitted")
    latency_s: float | None = Field(description="submitted to final state, seconds (null while running)")
    error: ErrorInfo | None = None


class TransactionDetail(BaseModel):
    id: int
    procedure: str
    args: dict[str, Any]
    submitter: str
    state: StateName
    times: dict[str, float] = Field(description="Unix time of the latest entry into each state")
    latency_s: float | None
    actions: list[ActionInfo] = Field(description="the action log: each step with its undo")
    steps: list[StepInfo] = Field(description="per-step outcomes on the devices, undo steps included")
    error: ErrorInfo | None = None
    violations: list[ViolationInfo]
    reads: list[str]
    writes: list[str]
    left_behind: list[str]
    deferrals: int


class TransactionPage(BaseModel):
    items: list[TransactionSummary] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null at the end")


# --- plan --------------------------------------------------------------------------------------------------
class Locks(BaseModel):
    read: list[str]
    write: list[str]


class PlanResult(BaseModel):
    procedure: str
    args: dict[str, Any]
    ok: bool = Field(description="true when apply would go ahead (no error, no violation)")
    actions: list[ActionInfo]
    violations: list[ViolationInfo]
    error: ErrorInfo | None = None
    locks: Locks


# --- resources and procedures ------------------------------------------------------------------------------
class ResourceInfo(BaseModel):
    path: str
    name: str
    kind: str
    attrs: dict[str, Any]
    child_count: int
    children: list[ResourceInfo] | None = Field(
        description="the children (to the requested depth); null below it"
    )


class ResourceTree(ResourceInfo):
    truncated: bool = Field(description="true when the node limit cut the tree short")


class ParamInfo(BaseModel):
    name: str
    type: Literal["string", "integer", "number", "boolean"]
    required: bool
    default: Any = None
    pattern: str | None = Field(default=None, description="a string argument's rule (a resource name)")
    max_length: int | None = None


class ProcedureInfo(BaseModel):
    name: str
    doc: str
    params: list[ParamInfo]


# --- drift, reload, repair ---------------------------------------------------------------------------------
class DriftInfo(BaseModel):
    path: str = Field(description="the resource that differs")
    attribute: str = Field(
        description="exists, state, vcpus, config, volumes, exported, next_hop, reachable..."
    )
    logical: Any = Field(description="the model's value (exists/reachable: a boolean)")
    physical: Any = Field(description="what the device reports")
    kind: str
    device: str = Field(description="the device that reported it")
    detail: dict[str, Any] | None = Field(default=None, description="what the device holds, for orphans")
    first_seen: float = Field(description="Unix time the drift was first seen")
    last_seen: float
    fenced_by: int | None = Field(description="fence owner: 0 drift, else the FAILED transaction; null: none")
    seen_in_pass: int
    note: str = Field(description="why reload or repair left it alone, if they did")


class DriftReport(BaseModel):
    path: str
    scanned: bool = Field(description="true when the devices were read for this answer")
    items: list[DriftInfo]
    fenced: dict[str, int] = Field(description="every fenced path and its owner (0: drift)")


class ScopeRequest(_Strict):
    path: str = Field(description="a resource path; its subtree is reloaded", min_length=1, max_length=4096)


class RepairRequest(_Strict):
    path: str = Field(description="a resource path; its subtree is repaired", min_length=1, max_length=4096)
    timeout: float = Field(default=60.0, gt=0, le=600, description="seconds to wait for the repairs")


class ReloadInfo(BaseModel):
    path: str
    changed: list[DriftInfo] = Field(description="drift written into the model")
    unfenced: list[str]
    skipped: list[DriftInfo] = Field(description="drift that could not be reloaded (see note): still fenced")


class RepairTransaction(BaseModel):
    id: int
    procedure: str
    args: dict[str, Any]
    state: StateName
    error: ErrorInfo | None = None


class RepairInfo(BaseModel):
    path: str
    consistent: bool = Field(description="true when a fresh read shows no drift left under the path")
    transactions: list[RepairTransaction] = Field(description="the compensating transactions run")
    resolved: list[DriftInfo]
    remaining: list[DriftInfo]
    unfenced: list[str]


# --- service -----------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok", "stopped"]


class Stats(BaseModel):
    counters: dict[str, int] = Field(description="submitted, committed, aborted, rolled_back, ...")
    states: dict[str, int] = Field(description="transactions by current state")
    queue_depth: int = Field(description="transactions waiting (SUBMITTED or DEFERRED)")
    in_flight: int = Field(description="transactions on the devices (STARTED, ROLLING_BACK, KILLED)")
    model_version: int
    fenced: list[str]


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    ts: float
    who: str
    role: str
    action: str
    outcome: str


class WhoAmI(BaseModel):
    name: str
    role: Literal["viewer", "operator", "admin"]


# --- the precise request schema of a procedure call ------------------------------------------------------
# Integers a JSON number represents exactly everywhere (JavaScript's safe integers).
MAX_SAFE_INT = 2**53 - 1


def procedure_call_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of a procedure call for the OpenAPI document: one variant per registered procedure,
    with its arguments' names, types and which are required. It documents exactly what the server's own
    validation (:meth:`Procedure.validate`) accepts, so clients and fuzzers can generate valid calls."""
    variants: list[dict[str, Any]] = []
    for name in registry.names():
        proc = registry.get(name)
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in proc.params:
            spec = p.to_dict()
            s: dict[str, Any] = {"type": spec["type"]}
            if s["type"] == "integer":
                s.update(minimum=-MAX_SAFE_INT, maximum=MAX_SAFE_INT)
            if "pattern" in spec:
                s.update(pattern=spec["pattern"], maxLength=spec["max_length"])
            if p.required:
                required.append(p.name)
            else:
                s["default"] = p.default
            props[p.name] = s
        args: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            args["required"] = required
        variants.append(
            {
                "type": "object",
                "title": name,
                "description": proc.doc,
                "properties": {
                    "procedure": {"type": "string", "enum": [name]},
                    "args": args,
                    "text_args": {"type": "boolean", "default": False},
                },
                "required": ["procedure", "args"] if required else ["procedure"],
                "additionalProperties": False,
            }
        )
    return {"oneOf": variants}


def batch_call_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of a batch body for the OpenAPI document: 1-1000 procedure calls (each variant of
    :func:`procedure_call_schema`, plus its optional idempotency ``key``)."""
    variants = []
    for v in procedure_call_schema(registry)["oneOf"]:
        key = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "null"}]}
        variants.append({**v, "properties": {**v["properties"], "key": key}})
    items = {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"oneOf": variants}}
    return {
        "type": "object",
        "properties": {"items": items},
        "required": ["items"],
        "additionalProperties": False,
    }
