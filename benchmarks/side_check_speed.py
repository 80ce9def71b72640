"""How long the sides-against-agreement query takes on a large warehouse.

    .venv/bin/python benchmarks/side_check_speed.py [--posts 1000000] [--out /tmp/sidespeed.duckdb]

The overview card and the report run ``polarwatch.reads.SIDE_CONSISTENCY_SQL`` (a self-join
of ``posts``, replies to parents) over every stored post. This fills a fresh DuckDB file with
``--posts`` posts in 8 topics (threads of 50, each reply to one of the 10 posts before it; stance
and agreement drawn uniformly, so every topic's sides come out random) and times the query three
times on fresh read-only connections, as the dashboard opens them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polarwatch.reads import SIDE_CONSISTENCY_SQL  # noqa: E402
from polarwatch.warehouse import connect, init_schema  # noqa: E402

FILL = """
    INSERT INTO posts (id, platform, author_id, text, created_at, topic, conversation_id,
                       parent_id, schema_version, stance, agreement, affect, emotion, intensity,
                       stance_conf, affect_conf, emotion_conf, backend)
    SELECT 'p' || i, 'reddit', 'a', 'text of a post', now(), 't' || (i % 8), 'c' || (i // 50),
           CASE WHEN i % 50 = 0 THEN NULL
                ELSE 'p' || (i - 1 - (hash(i) % least(i % 50, 10))::BIGINT) END, 1,
           ['pro', 'anti', 'unclear'][(1 + hash(i * 7) % 3)::BIGINT],
           CASE WHEN i % 50 = 0 THEN NULL
                ELSE ['agree', 'disagree', 'unclear'][(1 + hash(i * 3) % 3)::BIGINT] END,
           'no', 'neutral', 0, 1, 1, 1, 'bench'
    FROM range(?) t(i)"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sidespeed.duckdb"))
    args = ap.parse_args(argv)
    args.out.unlink(missing_ok=True)
    init_schema(args.out)
    with connect(args.out) as con:
        con.execute(FILL, [args.posts])
    for run in range(1, 4):
        with connect(args.out, read_only=True) as con:
            t0 = time.perf_counter()
            rows = con.execute(SIDE_CONSISTENCY_SQL).fetchall()
            ms = (time.perf_counter() - t0) * 1000
        print(f"run {run}: {args.posts:,} posts, {len(rows)} topics in {ms:.0f} ms "
              f"(first topic: {rows[0][1]:,} agreeing replies, {rows[0][2]:.1%} on the parent's "
              f"side)", flush=True)
    args.out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
