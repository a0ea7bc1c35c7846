"""Message templates that insert promo codes: `{{ promo.SPRING_SALE }}` becomes a code of the pool
whose template parameter is SPRING_SALE, issued to the message's recipient."""

import re

from django.core.exceptions import ValidationError

from .code_services import code_issue, code_issue_batch
from .models import Code, Pool

PARAMETER = re.compile(r"\{\{\s*promo\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
UNKNOWN_PARAMETERS = "No pool has the template parameter {names}."
PREVIEW_NO_CODE = "[no code left in {pool}]"


def message_parameters(text: str) -> list[str]:
    """Return the template parameters a message names, each once, in order."""
    return list(dict.fromkeys(PARAMETER.findall(text)))


def _pools_for(text: str) -> dict[str, Pool]:
    names = message_parameters(text)
    pools = {p.template_parameter: p for p in Pool.objects.filter(template_parameter__in=names)}
    missing = [name for name in names if name not in pools]
    if missing:
        raise ValidationError(UNKNOWN_PARAMETERS.format(names=", ".join(missing)))
    return pools


def message_render(*, text: str, customer: str, message_id: str) -> str:
    """Return the message with each promo parameter replaced by a code issued to `customer`.

    The message id is the idempotency key: rendering the same message again (a retry) inserts
    the same codes. Raises ValidationError for an unknown parameter and CodeRefused when a pool
    cannot issue.
    """
    pools = _pools_for(text)
    codes = {
        name: code_issue(pool=pool, customer=customer, idempotency_key=message_id).code
        for name, pool in pools.items()
    }
    return PARAMETER.sub(lambda match: codes[match.group(1)], text)


def message_render_batch(
    *, text: str, customers: list[str], mailing_id: str
) -> tuple[dict[str, str], list[str]]:
    """Return each customer's message (customer → text) and the customers left without one
    because a pool (and its fallback) ran dry; one batch issue per pool for the whole list.

    The mailing id is the batch's idempotency key (each customer's issue is recorded under
    "<mailing id>:<customer>"): rendering the mailing again inserts the same codes. Raises
    ValidationError for an unknown parameter and CodeRefused when a pool cannot issue.
    """
    pools = _pools_for(text)
    codes: dict[str, dict[str, str]] = {}
    short: set[str] = set()
    for name, pool in pools.items():
        outcome = code_issue_batch(pool=pool, customers=customers, idempotency_key=mailing_id)
        for item in outcome.issued:
            codes.setdefault(item.customer, {})[name] = item.code.code
        short.update(outcome.short)
    rendered = {
        customer: PARAMETER.sub(lambda match, c=found: c[match.group(1)], text)
        for customer, found in codes.items()
        if customer not in short
    }
    return rendered, sorted(short)


def message_preview(*, text: str) -> str:
    """Return the message with an example code of each pool, issuing nothing."""
    pools = _pools_for(text)
    examples = {}
    for name, pool in pools.items():
        example = Code.objects.filter(pool=pool, status=Code.Status.AVAILABLE).first()
        examples[name] = example.code if example else PREVIEW_NO_CODE.format(pool=pool)
    return PARAMETER.sub(lambda match: examples[match.group(1)], text)
