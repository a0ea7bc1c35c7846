from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """Format a count with thousands separators: 1234567 → 1,234,567."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
