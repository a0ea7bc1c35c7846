"""Why a code was not issued, checked or redeemed: stable codes for callers, and messages.

The HTTP API maps each reason to a status once (pools/api_base.py); the admin shows the label.
Labels are translated lazily, when shown: the admin in its reader's language, the API always in
English (api_base.ApiSpeaksEnglish).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Refusal(models.TextChoices):
    UNKNOWN_CODE = "unknown_code", _("There is no such code.")
    AMBIGUOUS_CODE = "ambiguous_code", _("This code is in several pools: name the pool.")
    POOL_NOT_ACTIVE = "pool_not_active", _("The pool is not active.")
    POOL_PAUSED = "pool_paused", _("The pool is paused: try again once it is resumed.")
    POOL_ENDED = "pool_ended", _("The pool has ended.")
    WITHDRAWN = "withdrawn", _("The code has been withdrawn.")
    PROCESSED_EXTERNALLY = (
        "processed_externally",
        _("Codes of this pool are redeemed by another system."),
    )
    NOT_YET_AVAILABLE = "not_yet_available", _("The code cannot be used yet.")
    EXPIRED = "expired", _("The code has expired.")
    ALREADY_REDEEMED = "already_redeemed", _("The code has already been redeemed.")
    NOT_ISSUED_TO_CUSTOMER = (
        "not_issued_to_customer",
        _("The code was not issued to this customer."),
    )
    VALIDITY_PERIOD_OVER = (
        "issue_validity_over",
        _("The code's validity period after issue is over."),
    )
    NO_CODES_LEFT = "no_codes_left", _("The pool has no code left to issue now.")
    ALREADY_ISSUED = "already_issued", _("The code was issued to another customer.")
    KEY_REUSED = "idempotency_key_reused", _("This idempotency key was used for another customer.")
    NOT_RELEASABLE = "not_releasable", _("The code is not issued: there is nothing to give back.")


class CodeRefused(Exception):
    def __init__(self, reason: Refusal):
        super().__init__(reason.label)
        self.reason = reason
