"""Replicated jobs on the controller: what it sees of them (observe), how it heals them (healer), and how
they are shown (views)."""
