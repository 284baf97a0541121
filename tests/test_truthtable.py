"""The truth table: get/set, rows/cols, compare, render, and the text format of docs/scenarios.md."""

import pytest

from harness.results import Expectation
from harness.truthtable import (
    EXPECTATION_OF_SYMBOL,
    PARSE_SYMBOLS,
    SYMBOL_OF_EXPECTATION,
    TruthTable,
    symbol_of,
)

R = ("x/a", "x/b", "y/a")


def test_get_set_row_col_and_unknown_keys():
    t = TruthTable(R, R, default=True)
    assert t.get("x/a", "y/a") is True
    t.set_row("x/b", False)
    t.set_col("y/a", None)
    t.set("x/a", "x/a", Expectation.UNDEFINED)
    assert [t.get("x/b", c) for c in R] == [False, False, None]
    assert t.get("y/a", "x/a") is True
    with pytest.raises(KeyError, match="unknown row 'q/q'"):
        t.get("q/q", "x/a")
    with pytest.raises(KeyError, match="unknown column 'q/q'"):
        t.set("x/a", "q/q", True)


def test_render_is_aligned_with_all_symbols():
    t = TruthTable(R, R, default=Expectation.ALLOW)
    t.set("x/a", "x/a", Expectation.UNDEFINED)
    t.set("x/b", "y/a", Expectation.DENY)
    t.set("y/a", "x/b", None)
    assert t.render() == (
        "    x/a x/b y/a\n"
        "x/a   -   .   .\n"
        "x/b   .   .   X\n"
        "y/a   .   ?   .")


def test_compare_lists_differing_cells_by_meaning():
    a = TruthTable(R, R, default=".")
    b = TruthTable(R, R, default=Expectation.ALLOW)
    assert a.compare(b) == []
    b.set("x/b", "x/a", Expectation.DENY)
    b.set("y/a", "y/a", False)
    assert a.compare(b) == [("x/b", "x/a"), ("y/a", "y/a")]
    with pytest.raises(ValueError, match="different shapes"):
        a.compare(TruthTable(R[:2], R))


def test_symbol_of():
    assert [symbol_of(v) for v in (True, False, None, Expectation.DENY, "-", "?", 3)] == \
        [".", "X", "?", "X", "-", "?", "?"]


def test_parse_with_header_labels_and_comments():
    t = TruthTable.parse("""
        # a comment
            x/a x/b y/a
        x/a  -   X   .
        y/a  .   .   -    
        x/b  X   -   .
    """, R, R)
    assert t.get("x/a", "x/b") == "X" and t.get("y/a", "x/a") == "." and t.get("x/b", "y/a") == "."
    assert t.render(lambda v: v).splitlines()[2] == "x/b   X   -   ."


def test_parse_without_labels_and_packed():
    t = TruthTable.parse("-X.\n.-X\nXX-", R, R)
    assert [t.get("y/a", c) for c in R] == ["X", "X", "-"]
    t2 = TruthTable.parse("- X .\n. - X\nX X -", R, R)
    assert t == t2


@pytest.mark.parametrize("text,msg", [
    ("- . .\n. - .", r"lines 11-12: matrix has 2 rows, expected 3; missing: y/a"),
    ("- . .\n. - .\n. . -\n. . .", r"line 14: more rows than the 3"),
    ("- . .\n. - \n. . -", r"line 12: expected 3 cells \(one per column x/a x/b y/a\), got 2"),
    ("q/q - . .\n. - .\n. . -", r"line 11: unknown row label 'q/q'"),
    ("- . o\n. - .\n. . -", r"line 11: bad symbol 'o'"),
    ("x/a - . .\nx/a . - .\n. . -", r"line 12: row 'x/a' given twice"),
    ("y/a x/a x/b\n- . .\n. - .\n. . -", r"line 11: looks like a header"),
])
def test_parse_errors_name_the_line(text, msg):
    with pytest.raises(ValueError, match=msg):
        TruthTable.parse(text, R, R, line_offset=10)


def test_one_symbol_vocabulary_for_expected_tables():
    assert EXPECTATION_OF_SYMBOL == {".": Expectation.ALLOW, "X": Expectation.DENY,
                                     "-": Expectation.UNDEFINED}
    assert set(EXPECTATION_OF_SYMBOL) == set(PARSE_SYMBOLS)
    for symbol, expectation in EXPECTATION_OF_SYMBOL.items():
        assert SYMBOL_OF_EXPECTATION[expectation] == symbol
        assert symbol_of(expectation) == symbol_of(expectation.value) == symbol_of(symbol) == symbol
