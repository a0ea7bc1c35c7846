from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """Format a count with the reader's thousands separators: 1234567 → 1,234,567 in English,
    1 234 567 in Russian."""
    from pools.formats import number

    try:
        return number(int(value))
    except (TypeError, ValueError):
        return value


@register.filter
def duration(seconds) -> str:
    """Format a duration in seconds as pools/formats.py does: "0.4 s", "2 min 5 s"."""
    from pools.formats import duration_display

    try:
        return duration_display(float(seconds))
    except (TypeError, ValueError):
        return "—"


@register.filter
def code_status(value) -> str:
    """Name a code's status (a filter's value, "issued") in the reader's language."""
    from pools.models import Code

    return Code.Status(value).label if value in Code.Status.values else value
