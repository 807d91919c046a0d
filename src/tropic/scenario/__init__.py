"""The scenarios the demo, the crash-safe workload and the engine benchmarks run on generated datacenters."""

from tropic.model.generate import DatacenterSpec, build_datacenter, host_path, image_path

__all__ = ["DatacenterSpec", "build_datacenter", "host_path", "image_path"]
