"""``polarwatch schema``: print the record contract a producer must follow (JSON Schema).

Records on the posts topic are validated against this schema at ingest and in the stream; a
record that fails it is dead-lettered with the reason. The schema is generated from
``polarwatch.records.Post``, so it is always the one in force.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from polarwatch.records import Post
from polarwatch.safe_write import STDOUT, writing
from polarwatch.schemas import json_schema


def register(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a post on the posts topic",
                       description=__doc__.splitlines()[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--compact", action="store_true", help="one line instead of indented JSON")
    p.set_defaults(func=run)


def run(cfg: Any, args: argparse.Namespace) -> int:
    with writing(STDOUT):  # a full disk is one error line; a closed pipe stays quiet
        print(json.dumps(json_schema(Post), indent=None if args.compact else 2,
                         ensure_ascii=False), flush=True)
    return 0
