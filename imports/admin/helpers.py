"""Small helpers the imports and assignments screens share."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

IMPORT_QUEUED = _("Import %(job)s is queued: this page follows its progress and says when it ends.")


def int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, field_errors)
    else:
        form.add_error(None, error)
