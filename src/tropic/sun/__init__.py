"""Follow the sun (Supercloud): a replicated service whose members move between regions and providers as
client demand moves around the planet, to cut the latency users perceive. ``contract`` fixes what the
parts share: the latency matrix, the demand, a placement, and a strategy's day.
"""
