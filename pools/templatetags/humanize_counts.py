from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """Format a count with thousands separators: 1234567 → 1,234,567."""
    try:
        return f"{int(value):,}"
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
