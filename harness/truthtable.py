"""A from x to table of values (expected or observed connectivity), with a text form.

Why plain data: expectations (the oracle), observations (the prober) and their comparison
(verdicts) are all tables of the same shape; keeping the table free of any test framework lets
it be unit-tested without a cluster (upstream's truthtable.go calls Failf and has no tests).

Text form (docs/scenarios.md): one line per row, one symbol per column, `.` = connects,
`X` = blocked, `-` = not asserted / undefined, `?` = unknown / not probed and `!` = probe error
(rendering only). Row labels and a header line are optional; lines starting with `#` are
comments. This module is the one home of those symbols and of what they mean as Expectations:
the scenario reader, the verdicts and the reports import them from here.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from harness.results import Expectation

ALLOW, DENY, UNDEFINED, UNKNOWN = ".", "X", "-", "?"
#: an observed cell whose probe says nothing about policy (reports only)
ERROR = "!"
#: an observed cell that flapped while the step was observed: no single verdict (reports only)
UNSTABLE = "~"
PARSE_SYMBOLS = (ALLOW, DENY, UNDEFINED)
#: what each symbol of an expected table means, and back
EXPECTATION_OF_SYMBOL = {ALLOW: Expectation.ALLOW, DENY: Expectation.DENY,
                         UNDEFINED: Expectation.UNDEFINED}
SYMBOL_OF_EXPECTATION = {e: s for s, e in EXPECTATION_OF_SYMBOL.items()}


def symbol_of(value: Any) -> str:
    """The symbol of a cell value: Expectation/Decision/bool/None/'.'-style strings.

    Why duck-typed: tables hold oracle Decisions, Expectations, observed booleans or symbols;
    one default renderer covers them without importing the modules that define them.
    """
    if value is None:
        return UNKNOWN
    value = getattr(value, "expectation", value)
    if isinstance(value, bool):
        return ALLOW if value else DENY
    if isinstance(value, Expectation):
        return SYMBOL_OF_EXPECTATION[value]
    v = getattr(value, "value", value)
    if v in EXPECTATION_OF_SYMBOL:
        return str(v)
    try:
        return SYMBOL_OF_EXPECTATION[Expectation(v)]
    except ValueError:
        return UNKNOWN


class TruthTable:
    """rows x cols of values; get/set raise KeyError on labels the table does not have."""

    def __init__(self, rows: Sequence[str], cols: Sequence[str], default: Any = None):
        self.rows = tuple(rows)
        self.cols = tuple(cols)
        if len(set(self.rows)) != len(self.rows) or len(set(self.cols)) != len(self.cols):
            raise ValueError("row and column labels must be unique")
        self._rowset, self._colset = set(self.rows), set(self.cols)
        self._cells: dict[tuple[str, str], Any] = {(r, c): default for r in self.rows
                                                   for c in self.cols}

    def _check(self, row: str, col: str) -> None:
        if row not in self._rowset:
            raise KeyError(f"unknown row {row!r}; rows are {', '.join(self.rows)}")
        if col not in self._colset:
            raise KeyError(f"unknown column {col!r}; columns are {', '.join(self.cols)}")

    def get(self, row: str, col: str) -> Any:
        self._check(row, col)
        return self._cells[(row, col)]

    def set(self, row: str, col: str, value: Any) -> None:
        self._check(row, col)
        self._cells[(row, col)] = value

    def set_row(self, row: str, value: Any) -> None:
        for c in self.cols:
            self.set(row, c, value)

    def set_col(self, col: str, value: Any) -> None:
        for r in self.rows:
            self.set(r, col, value)

    def items(self) -> Iterable[tuple[str, str, Any]]:
        """(row, col, value) in row-major model order."""
        for r in self.rows:
            for c in self.cols:
                yield r, c, self._cells[(r, c)]

    def map(self, fn: Callable[[Any], Any]) -> TruthTable:
        """A new table of the same shape with fn applied to every value."""
        out = TruthTable(self.rows, self.cols)
        out._cells = {k: fn(v) for k, v in self._cells.items()}
        return out

    def compare(self, other: TruthTable, key: Callable[[Any], Any] = symbol_of
                ) -> list[tuple[str, str]]:
        """The (row, col) cells whose values differ (compared through `key`, by default the
        symbol, so a Decision and an Expectation compare by what they mean)."""
        if self.rows != other.rows or self.cols != other.cols:
            raise ValueError("cannot compare tables of different shapes: "
                             f"{len(self.rows)}x{len(self.cols)} vs "
                             f"{len(other.rows)}x{len(other.cols)} (or different labels)")
        return [(r, c) for r, c, v in self.items() if key(v) != key(other._cells[(r, c)])]

    def render(self, symbol: Callable[[Any], str] = symbol_of) -> str:
        """Aligned text: a header of column labels, then one labelled line per row."""
        width = max([len(c) for c in self.cols] + [1])
        lw = max([len(r) for r in self.rows] + [1])
        head = " " * lw + " " + " ".join(c.rjust(width) for c in self.cols)
        lines = [head.rstrip()]
        for r in self.rows:
            cells = " ".join(str(symbol(self._cells[(r, c)])).rjust(width) for c in self.cols)
            lines.append(f"{r.ljust(lw)} {cells}")
        return "\n".join(lines)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TruthTable) and self.rows == other.rows
                and self.cols == other.cols and self._cells == other._cells)

    def __repr__(self) -> str:
        return f"TruthTable({len(self.rows)}x{len(self.cols)})\n{self.render()}"

    @staticmethod
    def parse(text: str, rows: Sequence[str], cols: Sequence[str],
              line_offset: int = 0) -> TruthTable:
        """Read the text form into a table of symbols ('.', 'X', '-').

        Why line numbers: the matrix sits inside a YAML file; `line_offset` (the file line of the
        matrix's first line, minus one) makes every error name the file line to fix.
        """
        table = TruthTable(rows, cols)
        seen: set[str] = set()
        next_row = 0
        for i, raw in enumerate(text.splitlines(), start=1):
            ln = i + line_offset
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tokens = line.split()
            if all(t in table._colset for t in tokens):
                if tuple(tokens) == table.cols:
                    continue  # a header line
                raise ValueError(f"line {ln}: looks like a header but does not list the "
                                 f"columns in model order: {' '.join(table.cols)}")
            label = None
            if tokens[0] not in PARSE_SYMBOLS and not _is_packed(tokens[0]):
                label = tokens[0]
                tokens = tokens[1:]
                if label not in table._rowset:
                    raise ValueError(f"line {ln}: unknown row label {label!r}; rows are "
                                     f"{' '.join(table.rows)}")
            if len(tokens) == 1 and len(tokens[0]) == len(table.cols) > 1 and _is_packed(tokens[0]):
                tokens = list(tokens[0])  # "X..X" without spaces
            if len(tokens) != len(table.cols):
                raise ValueError(f"line {ln}: expected {len(table.cols)} cells (one per column "
                                 f"{' '.join(table.cols)}), got {len(tokens)}")
            for t in tokens:
                if t not in PARSE_SYMBOLS:
                    raise ValueError(f"line {ln}: bad symbol {t!r}; use '.' (connects), "
                                     f"'X' (blocked) or '-' (not asserted)")
            if label is None:
                while next_row < len(table.rows) and table.rows[next_row] in seen:
                    next_row += 1
                if next_row >= len(table.rows):
                    raise ValueError(f"line {ln}: more rows than the {len(table.rows)} the "
                                     f"model has")
                label = table.rows[next_row]
            if label in seen:
                raise ValueError(f"line {ln}: row {label!r} given twice")
            seen.add(label)
            for c, t in zip(table.cols, tokens, strict=True):
                table._cells[(label, c)] = t
        missing = [r for r in table.rows if r not in seen]
        if missing:
            where = f"lines {line_offset + 1}-{line_offset + max(1, len(text.splitlines()))}"
            raise ValueError(f"{where}: matrix has {len(seen)} rows, expected "
                             f"{len(table.rows)}; missing: {' '.join(missing)}")
        return table


def _is_packed(token: str) -> bool:
    return len(token) > 1 and all(ch in PARSE_SYMBOLS for ch in token)
