"""Geo-distributed services (follow-the-sun's moving parts): the network overlay that keeps a member's
public address across hosts and regions, the cross-region live migration transaction, and the
geo-replicated image store with close-to-open consistency.

* ``precopy``: the iterative pre-copy model (transfer time and downtime of a live migration).
"""
