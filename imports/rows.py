"""What a reader yields in place of a row's cells when the row holds none to read."""

from dataclasses import dataclass


@dataclass(frozen=True)
class UnreadableRow:
    """Stands in for a row's cells when the row could not be parsed at all (a quote that is
    never closed, a cell an Excel formula left empty); `column` and `value` say where, when
    known, and `cells` are what could be read of the row, for the rejected rows' download."""

    reason: str
    column: str = ""
    value: str = ""
    cells: tuple = ()


@dataclass(frozen=True)
class SkippedRow:
    """Stands in for a row read that holds no code, with why (the header repeated)."""

    reason: str


class BlankRow:
    """Stands in for the cells of a blank row: read, and counted as skipped."""

    def __repr__(self):
        return "BLANK_ROW"


BLANK_ROW = BlankRow()
