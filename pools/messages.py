"""Message templates that insert promo codes: `{{ promo.SPRING_SALE }}` becomes a code of the pool
whose template parameter is SPRING_SALE, issued to the message's recipient.

The preview's texts and the refusals are read by staff (translated in their request); a rendered
message itself is the sender's text, never translated."""

import difflib
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .code_services import code_issue, code_issue_batch
from .models import Code, Pool

PARAMETER = re.compile(r"\{\{\s*promo\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
UNKNOWN_PARAMETERS = _("No pool has the template parameter {names}.")
PREVIEW_NO_CODE = _("[no code left in {pool}]")
DID_YOU_MEAN = _("Did you mean {suggestion}?")
PREVIEW_UNKNOWN = _("[unknown parameter {name}]")


def message_parameters(text: str) -> list[str]:
    """Return the template parameters a message names, each once, in order."""
    return list(dict.fromkeys(PARAMETER.findall(text)))


def _pools_for(text: str) -> dict[str, Pool]:
    names = message_parameters(text)
    pools = {p.template_parameter: p for p in Pool.objects.filter(template_parameter__in=names)}
    missing = [name for name in names if name not in pools]
    if missing:
        raise ValidationError(
            ngettext(
                "No pool has the template parameter %(names)s.",
                "No pool has the template parameters %(names)s.",
                len(missing),
            )
            % {"names": ", ".join(missing)}
        )
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


@dataclass(frozen=True)
class PreviewPart:
    """One piece of a previewed message: text as written, an example code, or an unknown
    parameter (with the closest known one, if any)."""

    text: str
    parameter: str = ""
    unknown: bool = False
    suggestion: str = ""


def parameter_suggestion(name: str, known: list[str]) -> str:
    """Return the known template parameter closest to `name`, ignoring case, or ""."""
    by_folded = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = name.casefold()
    if folded in by_folded:
        return by_folded[folded]
    close = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else ""


def message_preview_parts(*, text: str) -> list[PreviewPart]:
    """Return the message cut into parts: each known parameter with an example code of its pool,
    each unknown one marked where it stands with a suggestion; issue nothing."""
    names = message_parameters(text)
    pools = {p.template_parameter: p for p in Pool.objects.filter(template_parameter__in=names)}
    known = []
    if any(name not in pools for name in names):
        known = list(Pool.objects.values_list("template_parameter", flat=True))
    parts = []
    position = 0
    for match in PARAMETER.finditer(text):
        if match.start() > position:
            parts.append(PreviewPart(text[position : match.start()]))
        name = match.group(1)
        pool = pools.get(name)
        if pool is None:
            parts.append(
                PreviewPart(
                    match.group(0),
                    parameter=name,
                    unknown=True,
                    suggestion=parameter_suggestion(name, known),
                )
            )
        else:
            example = Code.objects.filter(pool=pool, status=Code.Status.AVAILABLE).first()
            code = example.code if example else PREVIEW_NO_CODE.format(pool=pool)
            parts.append(PreviewPart(code, parameter=name))
        position = match.end()
    if position < len(text):
        parts.append(PreviewPart(text[position:]))
    return parts


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
    """Return the message with an example code of each pool, issuing nothing; an unknown
    parameter shows as [unknown parameter NAME]."""
    return "".join(
        PREVIEW_UNKNOWN.format(name=part.parameter) if part.unknown else part.text
        for part in message_preview_parts(text=text)
    )
