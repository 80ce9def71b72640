"""Text from the data as people see it, for the dashboard and the report alike: ids and names
with their bidi controls visible, and right-to-left text isolated so it cannot reorder the text
shown around it (a post id ending in U+202E read the header after it backwards).
"""

from __future__ import annotations

import re
import unicodedata

# Unicode's explicit bidi formatting characters: the embeddings and overrides (U+202A-U+202E),
# the isolates (U+2066-U+2069) and the marks (LRM, RLM, ALM).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FSI, PDI = "\u2068", "\u2069"  # first-strong isolate and its end
_ISOLATE_OPENERS = frozenset("\u2066\u2067\u2068")
_RTL = frozenset({"R", "AL", "AN"})  # bidi classes that reorder neutral text around them
_PARAGRAPHS = re.compile("([\n\r\x1c-\x1e\x85\u2029])")  # bidi class B: each line on its own


def _needs_isolate(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in _RTL for ch in text) \
        or BIDI_CONTROLS.search(text) is not None


def visible_controls(value: object) -> str:
    """`value` with every bidi control written as its escape (``\\u202e``)."""
    return BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))


def name_text(value: object) -> str:
    """An id, author, platform, topic or event name as shown: every bidi control made visible
    as its escape, and a value holding right-to-left letters wrapped in an isolate (FSI ...
    PDI) so it cannot reorder the text around it. Apply it once: the isolate's own marks would
    be shown the second time."""
    text = visible_controls(value)
    return FSI + text + PDI if _needs_isolate(text) else text


def isolated(value: object) -> str:
    """A post's text (or another free text) as shown: as typed, right-to-left script and bidi
    controls included, but each line inside an isolate that nothing in it can close (a stray
    PDI is made visible, isolates it leaves open are closed), so it cannot reorder the header or
    labels around it. Text without right-to-left letters or controls is unchanged."""
    text = str(value)
    if not _needs_isolate(text):
        return text
    return "".join(_isolate_line(part) for part in _PARAGRAPHS.split(text))


def _isolate_line(line: str) -> str:
    if not _needs_isolate(line):  # empty, a line break, or nothing to isolate
        return line
    out, depth = [], 0
    for ch in line:
        if ch in _ISOLATE_OPENERS:
            depth += 1
        elif ch == PDI:
            if depth == 0:
                out.append("\\u2069")
                continue
            depth -= 1
        out.append(ch)
    return FSI + "".join(out) + PDI * depth + PDI
