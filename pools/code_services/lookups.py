"""What every code service reads the same way: a customer id, a code by its text."""

import hashlib

from django.core.exceptions import ValidationError
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from ..models import (
    CUSTOMER_MAX_LENGTH,
    Code,
    CodeIssue,
    Pool,
)
from ..refusals import CodeRefused, Refusal

_KEY_MAX_LENGTH = CodeIssue._meta.get_field("idempotency_key").max_length
# Read by API callers (in English) and by staff (translated in their request).
CUSTOMER_REQUIRED = format_lazy(
    _("Give the customer's id (at most {count} characters)."), count=CUSTOMER_MAX_LENGTH
)


def customer_clean(customer: str) -> str:
    """Return the customer id as every service stores and compares it (without surrounding
    whitespace); raise ValidationError if there is none or it is too long. The API's limits
    count customers by this same id."""
    customer = (customer or "").strip()
    # NUL: PostgreSQL cannot store it (the API refuses it before; the shell and files do not).
    if not customer or len(customer) > CUSTOMER_MAX_LENGTH or "\x00" in customer:
        raise ValidationError({"customer": CUSTOMER_REQUIRED})
    return customer


def _find_code(code: str, pool: Pool | None, *, lock: bool) -> Code:
    """Return the code with this text (in `pool` if given), locked for the transaction."""
    queryset = Code.objects.filter(code=(code or "").strip()).select_related("pool")
    if pool is not None:
        queryset = queryset.filter(pool=pool)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    found = list(queryset[:2])
    if not found:
        # Whatever the pool's state: a refusal about the pool comes only once the code is known
        # to exist and to be the caller's to hear of, so that no answer tells codes that exist
        # from codes that do not, and every miss spends the guessing budget.
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    if len(found) > 1:
        raise CodeRefused(Refusal.AMBIGUOUS_CODE)
    return found[0]


def bounded_key(key: str) -> str:
    """Return an idempotency key as stored: one longer than its column, as its hash."""
    if len(key) > _KEY_MAX_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key
