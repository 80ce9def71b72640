"""`polarwatch.formats.csv_records`: a quote that never closes costs one line, not the file."""

from __future__ import annotations

import csv
import io

from polarwatch.formats import csv_records


def records(text: str) -> list[tuple[int, list[str] | None, str, str | None]]:
    return [tuple(r) for r in csv_records(io.StringIO(text, newline=""))]  # type: ignore[misc]


def test_quoted_fields_over_several_lines_and_blank_lines_are_read_as_csv() -> None:
    assert records('id,text\n1,"two\nlines"\n\n2,"say ""hi"""\n') == [
        (1, ["id", "text"], "id,text\n", None),
        (2, ["1", "two\nlines"], '1,"two\nlines"\n', None),
        (5, ["2", 'say "hi"'], '2,"say ""hi"""\n', None)]


def test_a_quote_that_never_closes_gives_back_its_line_and_reads_on() -> None:
    got = records('id,text,n\n1,"open,3\n2,b,4\n3,c,5\n')
    assert [r[:3] for r in got] == [(1, ["id", "text", "n"], "id,text,n\n"),
                                    (2, None, '1,"open,3\n'),
                                    (3, ["2", "b", "4"], "2,b,4\n"),
                                    (4, ["3", "c", "5"], "3,c,5\n")]
    assert got[1][3] == ("unterminated quote: the quoted field opened on line 2 runs on over 2 "
                         "more line(s) (2 fields where the header has 3); line 2 is set aside "
                         "and reading goes on from line 3")


def test_a_quote_swallowing_past_the_field_limit_costs_one_line() -> None:
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(100)
        body = "".join(f"{i},x{'y' * 30},{i}\n" for i in range(2, 9))
        got = records('id,text,n\n1,"open,1\n' + body)
    finally:
        csv.field_size_limit(limit)
    assert got[1][1] is None and got[1][3] is not None and "field larger than field limit" in got[1][3]
    assert [r[1][0] for r in got[2:] if r[1]] == [str(i) for i in range(2, 9)]


def test_a_well_quoted_field_past_the_field_limit_is_one_record_set_aside() -> None:
    """A quoted text over the limit, on many lines: every line of it came back as a row of its
    own (the audit's 350 KB field gave 70,003 dead letters); now the record is one, and the rows
    after it are read. A stray quote that a later quote inside a field seems to close keeps the
    rule above: its first line alone is set aside."""
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(100)
        text = "".join(f'line {i}, with a ""quote""\n' for i in range(40))
        got = records(f'id,text,n\n1,short,1\n2,"{text}",2\n3,after,3\n')
        stray = records('id,text,n\n1,"open,1\n' + "".join(
            f"{i},x{'y' * 30},{i}\n" for i in range(2, 9)) + '9,a "quoted" word,9\n')
    finally:
        csv.field_size_limit(limit)
    assert [(r[0], r[1]) for r in got] == [(1, ["id", "text", "n"]), (2, ["1", "short", "1"]),
                                           (3, None), (44, ["3", "after", "3"])]
    assert got[2][2] == '2,"line 0, with a ""quote""\n'  # its first line, for the dead letter
    assert got[2][3] == ("a quoted field longer than the 100-character limit, in the record on "
                         "lines 3-43; the record is set aside and reading goes on from line 44")
    assert stray[1][1] is None and "unterminated quote" in str(stray[1][3])
    assert [r[1][0] for r in stray[2:] if r[1]] == [str(i) for i in range(2, 10)]


def test_a_line_that_has_the_wrong_count_on_its_own_is_given_as_it_is() -> None:
    assert records("a,b\n1\n1,2,3\n")[1:] == [(2, ["1"], "1\n", None), (3, ["1", "2", "3"], "1,2,3\n", None)]
