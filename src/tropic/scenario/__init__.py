"""Generated datacenters and the scenarios the demo and workloads run on them."""

from tropic.scenario.datacenter import DatacenterSpec, build_datacenter, host_path, image_path

__all__ = ["DatacenterSpec", "build_datacenter", "host_path", "image_path"]
