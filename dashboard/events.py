"""Re-export: the event calendar lives in :mod:`polarwatch.events` (used by every stage)."""
from polarwatch.events import *  # noqa: F403
