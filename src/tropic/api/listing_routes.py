"""The operator-view endpoints: ``GET /v1/vms``, ``/v1/hosts``, ``/v1/regions`` (rows with capacity,
label selectors, pages by a path cursor) and ``GET /v1/describe`` (one resource and the transactions that
acted on it). The rows are built by :mod:`tropic.api.listing` on the controller's logical thread."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from tropic.api import listing, views
from tropic.api.errors import error_responses
from tropic.api.models import TransactionSummary
from tropic.txn.controller import Controller


class Capacity(BaseModel):
    cpus: int = Field(description="physical CPUs")
    vcpu_limit: float = Field(description="vCPUs that may be placed: cpus x cpu_overcommit")
    memory_mib: int
    vcpus_used: int
    memory_used_mib: int
    vcpus_free: float = Field(description="vcpu_limit - vcpus_used (negative when over the limit)")
    memory_free_mib: int
    vms: int


class VMRow(BaseModel):
    path: str
    name: str
    region: str
    host: str
    state: str
    vcpus: int
    memory_mib: int
    uid: str = Field(description="stable identity, kept across migrations (empty for VMs made before it)")
    image: str
    volume: str
    labels: dict[str, Any]


class HostRow(Capacity):
    path: str
    name: str
    region: str
    cpu_overcommit: float
    cordoned: bool
    driver: str
    failure_domain: str
    uri: str
    labels: dict[str, Any]


class RegionRow(Capacity):
    path: str
    name: str
    location: str
    timezone: str
    provider: str
    labels: dict[str, Any]
    hosts: int


class VMPage(BaseModel):
    items: list[VMRow]
    next_after: str | None = Field(description="pass as ?after= for the next page; null on the last")


class HostPage(BaseModel):
    items: list[HostRow]
    next_after: str | None = None


class RegionPage(BaseModel):
    items: list[RegionRow]
    next_after: str | None = None


class ChildrenSummary(BaseModel):
    count: int
    by_kind: dict[str, int]
    first: list[str] = Field(description="the names of the first 20 children")


class Description(BaseModel):
    path: str
    name: str
    kind: str
    attrs: dict[str, Any]
    capacity: dict[str, Any] | None = Field(
        description="hosts and regions: capacity, used and free; a VM: its host's (with 'of')"
    )
    children: ChildrenSummary
    transactions: list[TransactionSummary] = Field(
        description="the newest transactions that acted on it (a VM: also at its earlier paths, by uid)"
    )
    members: list[dict[str, Any]] | None = Field(
        None, description="a service: its members (VM, region, provider, host, public address)"
    )


def add_listing_routes(app: FastAPI, controller: Controller, Viewer: Any) -> None:
    """Register the operator-view endpoints on ``app`` (viewer role)."""
    auth_errors = (401, 403)
    Selector = Annotated[
        str | None,
        Query(
            max_length=1000,
            description="labels: key=value, key!=value or key, comma-separated (all must hold)",
        ),
    ]
    Limit = Annotated[int, Query(ge=1, le=listing.MAX_ROWS, description="rows in one page")]
    After = Annotated[
        str | None, Query(max_length=1000, description="cursor: the last path of the previous page")
    ]
    RegionName = Annotated[str | None, Query(max_length=63, description="only this region (its name)")]

    @app.get(
        "/v1/vms", tags=["views"], response_model=VMPage, responses=error_responses(*auth_errors, 404, 422)
    )
    def list_vms(
        who: Viewer,
        selector: Selector = None,
        region: RegionName = None,
        host: Annotated[str | None, Query(max_length=63, description="only this host (its name)")] = None,
        after: After = None,
        limit: Limit = listing.DEFAULT_ROWS,
    ) -> dict[str, Any]:
        """VMs in path order: name, region, host, state, size, uid, image, volume, labels."""
        sel = listing.parse_selector(selector)
        return controller.call(
            lambda: listing.list_vms(
                controller.model, sel, region=region, host=host, after=after, limit=limit
            )
        )

    @app.get(
        "/v1/hosts",
        tags=["views"],
        response_model=HostPage,
        responses=error_responses(*auth_errors, 404, 422),
    )
    def list_hosts(
        who: Viewer,
        selector: Selector = None,
        region: RegionName = None,
        after: After = None,
        limit: Limit = listing.DEFAULT_ROWS,
    ) -> dict[str, Any]:
        """Hosts in path order with their capacity, use and free room, VM count, cordon, driver, failure
        domain and labels."""
        sel = listing.parse_selector(selector)
        return controller.call(
            lambda: listing.list_hosts(controller.model, sel, region=region, after=after, limit=limit)
        )

    @app.get(
        "/v1/regions", tags=["views"], response_model=RegionPage, responses=error_responses(*auth_errors, 422)
    )
    def list_regions(who: Viewer, selector: Selector = None) -> dict[str, Any]:
        """Compute regions with location, time zone, provider, host count and capacity totals."""
        sel = listing.parse_selector(selector)
        return controller.call(lambda: listing.list_regions(controller.model, sel))

    @app.get(
        "/v1/describe",
        tags=["views"],
        response_model=Description,
        responses=error_responses(*auth_errors, 404, 422),
    )
    def describe(
        who: Viewer,
        ref: Annotated[
            str,
            Query(
                min_length=1,
                max_length=1000,
                description="a path; a VM's name, region/name or uid; a region's or a host's name",
            ),
        ],
        txns: Annotated[
            int, Query(ge=0, le=100, description="how many transactions to include")
        ] = listing.DESCRIBE_TXNS,
    ) -> dict[str, Any]:
        """One resource: attributes, capacity, children, and the newest transactions that acted on it."""

        def read() -> dict[str, Any]:
            path = listing.find(controller.model, ref)
            return listing.describe(controller.model, path)

        out = controller.call(read)
        uid = out["attrs"].get("uid", "") if out["kind"] == "vm" else ""
        if txns:
            found = listing.history(controller, out["path"], str(uid or ""), limit=txns)
            out["transactions"] = [views.summary(t) for t in found]
        return out
