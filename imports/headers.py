"""Find a file's header and map its columns to the template's fields.

The header is the first row, among a file's first rows, with a cell naming the code column in
English or Russian by any of the names people give it (Code, Promo code, Coupon, Код,
Промокод …); case, spacing, punctuation and a note in parentheses are ignored. Only titles and
blank rows may stand above it: a row that looks like data ends the search, so that a code
that happens to read "Promo" is never taken for a header with real codes above it.

When no header names a code column, the manager picks the columns (a ColumnMapping, chosen on
the upload page and kept with the import); a file of a single column of codes needs no choice.
"""

import re
from dataclasses import dataclass, field

from django.utils.translation import pgettext_lazy

TEMPLATE_COLUMNS = ("Code", "Issue-start", "Issue-end", "Available-from", "Available-till")
# The template's columns as a message names them to a manager, in the manager's language (the
# Russian names are among the SYNONYMS, so a file headed with them reads the same).
TEMPLATE_COLUMN_NAMES = (
    pgettext_lazy("template column", "Code"),
    pgettext_lazy("template column", "Issue-start"),
    pgettext_lazy("template column", "Issue-end"),
    pgettext_lazy("template column", "Available-from"),
    pgettext_lazy("template column", "Available-till"),
)
FIELDS = ("code", "issue_start", "issue_end", "available_from", "available_till")

# The names people give each column, in English and Russian; compared by header_key.
SYNONYMS = {
    "code": (
        "Code",
        "Codes",
        "Promo code",
        "Promo codes",
        "Promocode",
        "Coupon",
        "Coupons",
        "Coupon code",
        "Voucher",
        "Voucher code",
        "Discount code",
        "Gift code",
        "Redemption code",
        "Код",
        "Коды",
        "Промокод",
        "Промокоды",
        "Промо-код",
        "Купон",
        "Купоны",
        "Код купона",
        "Ваучер",
        "Код скидки",
        "Скидочный код",
    ),
    "issue_start": (
        "Issue-start",
        "Issue from",
        "Issued from",
        "Issue start date",
        "Начало выдачи",
        "Выдача с",
        "Выдавать с",
        "Дата начала выдачи",
    ),
    "issue_end": (
        "Issue-end",
        "Issue until",
        "Issue till",
        "Issued until",
        "Issue end date",
        "Конец выдачи",
        "Окончание выдачи",
        "Выдача до",
        "Выдавать до",
        "Дата окончания выдачи",
    ),
    "available_from": (
        "Available-from",
        "Valid from",
        "Active from",
        "Redeemable from",
        "Действует с",
        "Доступен с",
        "Активен с",
        "Начало действия",
        "Дата начала действия",
    ),
    "available_till": (
        "Available-till",
        "Available until",
        "Available to",
        "Valid until",
        "Valid till",
        "Valid to",
        "Valid thru",
        "Expires",
        "Expires on",
        "Expiry",
        "Expiry date",
        "Expiration",
        "Expiration date",
        "Действует до",
        "Доступен до",
        "Активен до",
        "Срок действия",
        "Окончание действия",
        "Годен до",
        "Дата окончания действия",
    ),
}

_NOT_A_LETTER = re.compile(r"[\W_]+")
_NOTE = re.compile(r"\([^)]*\)")


def header_key(title) -> str:
    """A header cell as compared: lower case, ё as е, without a note in parentheses, spaces,
    hyphens, underscores or other punctuation ("Promo-code (required):" is "promocode")."""
    text = _NOTE.sub("", str(title if title is not None else "")).casefold().replace("ё", "е")
    return _NOT_A_LETTER.sub("", text)


FIELD_BY_KEY = {header_key(name): f for f, names in SYNONYMS.items() for name in names}
# How many rows from the top the header may be: past a title, a note and a few blank rows.
HEADER_SEARCH_ROWS = 20
# The rows of the file the mapping step shows the manager.
FIRST_ROWS_SHOWN = 10


def title_text(cell) -> str:
    return str(cell if cell is not None else "").strip().lstrip("\ufeff")


@dataclass(frozen=True)
class ColumnMapping:
    """Where the fields are: the header's row (0 for a file without one) and, for each of
    FIELDS, the index of its column or None. `chosen` when the manager picked the columns."""

    header_row: int
    columns: tuple
    titles: tuple = ()
    chosen: bool = False
    delimiter: str = ""
    sheet: str = ""
    # Chosen for an earlier upload to the same pool, and taken again for this file.
    remembered: bool = False

    def as_json(self) -> dict:
        return {
            "header_row": self.header_row,
            "columns": dict(zip(FIELDS, self.columns, strict=True)),
            "titles": list(self.titles),
            "delimiter": self.delimiter,
            "sheet": self.sheet,
            **({"remembered": True} if self.remembered else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> "ColumnMapping":
        columns = data.get("columns") or {}
        return cls(
            header_row=int(data.get("header_row") or 0),
            columns=tuple(_index_or_none(columns.get(f)) for f in FIELDS),
            titles=tuple(data.get("titles") or ()),
            chosen=True,
            delimiter=data.get("delimiter") or "",
            sheet=data.get("sheet") or "",
            remembered=bool(data.get("remembered")),
        )

    @property
    def code_index(self):
        return self.columns[0]


def _index_or_none(value):
    if value is None or value == "":
        return None
    return int(value)


@dataclass
class HeaderMatch:
    """A header row's fields: the index of each of FIELDS' columns, and the titles."""

    columns: list = field(default_factory=list)
    titles: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    # A field named by more than one column, and their titles (the manager must choose).
    repeated: tuple | None = None


def match_header(row) -> HeaderMatch | None:
    """Return the fields this row names, or None when no cell names the code column."""
    titles = [title_text(cell) for cell in row]
    positions: dict[str, list[int]] = {}
    match = HeaderMatch(titles=titles)
    for index, title in enumerate(titles):
        key = FIELD_BY_KEY.get(header_key(title)) if title else None
        if key is None:
            if title:
                match.ignored.append(title)
        else:
            positions.setdefault(key, []).append(index)
    if "code" not in positions:
        return None
    for key in FIELDS:
        if len(positions.get(key, ())) > 1:
            match.repeated = (key, [titles[i] for i in positions[key]])
            break
    match.columns = [positions[f][0] if f in positions else None for f in FIELDS]
    return match


def is_title_row(row) -> bool:
    """A row that may stand above the header: blank, or a title or note of one or two cells
    with words in them ("Spring codes", "Exported 01.03.2027"). A row like data ends the
    header search."""
    filled = [title_text(cell) for cell in row if title_text(cell)]
    if not filled:
        return True
    return len(filled) <= 2 and any(" " in text for text in filled)


def is_blank(row) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row)
