"""The template's column names as the page's reader reads them."""

from django import template

from imports.templates_download import column_title as _column_title

register = template.Library()


@register.filter
def column_title(name) -> str:
    """A template column's name ("Issue-end") in the current language; other names as they are."""
    return _column_title(name) if name else name
