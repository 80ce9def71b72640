"""Chart labels from the data that matplotlib draws literally (no mathtext, no TeX), with their
bidi controls visible (:mod:`polarwatch.display`, which the report's HTML and the dashboard use
for ids, names and post texts)."""

from __future__ import annotations

import textwrap
from typing import Any

from polarwatch.display import visible_controls

# matplotlib's Text properties that make a label literal: "$" starts no mathtext, and a user's
# matplotlibrc with text.usetex cannot hand a name to TeX.
LITERAL: dict[str, Any] = {"parse_math": False, "usetex": False}


def chart_label(value: object, width: int, lines: int = 1, suffix: str = "") -> str:
    """A name for a chart (drawn with :data:`LITERAL`): controls visible, on at most `lines`
    lines of `width` characters, cut with an ellipsis when longer, and `suffix` (kept whole)
    at its end."""
    text = " ".join(visible_controls(value).split())
    wrapped = textwrap.wrap(text + suffix, width) or [""]
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    wrapped = textwrap.wrap(text, width)[:lines]
    room = max(1, width - len(suffix) - 1)
    wrapped[-1] = wrapped[-1][:room].rstrip() + "…" + suffix
    return "\n".join(wrapped)
