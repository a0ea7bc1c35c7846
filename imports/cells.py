"""A cell's value as text: as the user typed it, and as a message or the report can show it."""

import re
from datetime import datetime

# Enough to recognise a value; the rest of a long bad cell would only bury the report.
SHOWN_LENGTH = 100
# C0 control characters and DEL as their visible symbols (␀, ␉, ␊ …), so that a NUL can be
# stored and a reader sees what was there.
_VISIBLE = {code: 0x2400 + code for code in range(32)} | {0x7F: 0x2421}
_SURROGATE = re.compile("[\ud800-\udfff]")


def cell_text(value) -> str:
    """Return a cell as the user typed it: 12345 rather than 12345.0 for a number from Excel."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def shown(value, *, limit: int = SHOWN_LENGTH) -> str:
    """Return a cell's text as it can be shown and stored: control characters as visible
    symbols, lone surrogates (which no database can store) as �, and at most `limit`
    characters followed by "…"."""
    text = value if isinstance(value, str) else cell_text(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    text = text.translate(_VISIBLE)
    return _SURROGATE.sub("\ufffd", text)
