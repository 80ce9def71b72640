"""``polarwatch demo``: the whole chain on a synthetic corpus, then a live feed (composes every
stage, so it lives outside them)."""
