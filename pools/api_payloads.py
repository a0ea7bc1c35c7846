"""The API's payloads: what each operation takes and answers, and its error bodies, as the
OpenAPI schema states them. The views are in pools/api.py."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, validate_slug
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from .api_keys import OPERATION_NOT_ALLOWED, POOL_NOT_ALLOWED
from .code_services import BATCH_MAX, CUSTOMER_REQUIRED, customer_clean
from .issuing_limits import CAP_REACHED, CUSTOMER_LIMITED, KEY_LIMITED
from .models import CODE_MAX_LENGTH, CUSTOMER_MAX_LENGTH, Code, Pool, Redemption
from .refusals import Refusal

INVALID_TEXT = "Give text without NUL characters."
POOL_ID_MAX_LENGTH = Pool._meta.get_field("slug").max_length
TEXT_MAX_LENGTH = 200

# DRF's CharField refuses NUL (PostgreSQL cannot store it): said as a pattern, so that the
# schema says what is enforced. (It refuses lone surrogates too, which no encoding can carry;
# a schema cannot say that, and clients generated from one never send them.)
NO_NUL = r"^[^\x00]*\Z"
# And not only whitespace, which the services strip: the characters str.strip() takes, spelt
# out, since "\s" means fewer of them in the schema's (ECMAScript) regular expressions.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SOME_TEXT = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*\Z"


class Text(serializers.CharField):
    """A JSON string and nothing else (DRF's CharField takes numbers too), its length counted
    as it arrives: what the OpenAPI schema's type, minLength, maxLength and pattern say. The
    services strip surrounding whitespace."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        if not kwargs.get("allow_blank"):
            kwargs.setdefault("min_length", 1)
        kwargs.setdefault("validators", [RegexValidator(NO_NUL, INVALID_TEXT)])
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _pool_field(**kwargs):
    return Text(max_length=POOL_ID_MAX_LENGTH, validators=[validate_slug], **kwargs)


class CustomerField(Text):
    def __init__(self, **kwargs):
        super().__init__(
            max_length=CUSTOMER_MAX_LENGTH,
            validators=[RegexValidator(SOME_TEXT, CUSTOMER_REQUIRED)],
            **kwargs,
        )

    def to_internal_value(self, data):
        try:
            return customer_clean(super().to_internal_value(data))
        except DjangoValidationError:
            raise serializers.ValidationError(CUSTOMER_REQUIRED) from None


class IssueInput(serializers.Serializer):
    customer = CustomerField()
    idempotency_key = Text(max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True, default="")


class FlatListField(serializers.ListField):
    """A list whose item errors come as a flat list of messages ("Item 3: …"), as the error
    body's `fields` says: DRF would nest them in a dict by index."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            if not isinstance(error.detail, dict):
                raise
            messages = [
                f"Item {index}: {message}"
                for index, problems in list(error.detail.items())[:10]
                for message in problems
            ]
            raise serializers.ValidationError(messages) from None


class IssueBatchInput(serializers.Serializer):
    customers = FlatListField(
        child=CustomerField(), min_length=1, max_length=BATCH_MAX, help_text="Customer ids."
    )
    idempotency_key = Text(
        max_length=TEXT_MAX_LENGTH,
        help_text="One key for the batch: a retry returns the same codes and issues only to "
        "the customers still without one.",
    )


class ReleaseInput(serializers.Serializer):
    code = Text(max_length=CODE_MAX_LENGTH)
    pool = _pool_field(help_text="Pool ID of the code.")
    idempotency_key = Text(
        max_length=TEXT_MAX_LENGTH,
        help_text="The key the code was issued under (for a batch: `<batch key>:<customer>`).",
    )


class CodeInput(serializers.Serializer):
    code = Text(max_length=CODE_MAX_LENGTH)
    customer = CustomerField()
    pool = _pool_field(help_text="Pool ID of the code.")


class RedeemInput(CodeInput):
    order_reference = Text(max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True, default="")


class CodeOutput(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    customer = serializers.CharField(
        source="issued_to",
        allow_null=True,
        help_text="The customer the code was issued to, when that is the asking customer.",
    )
    valid_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="The last moment the code can be redeemed: the earlier of its "
        "`available_till` and, in a pool that requires issue before redemption, the end of the "
        "validity period after issue; null when no date ends it. Redemption refuses the code "
        "after it (`expired`, `issue_validity_over`).",
    )

    class Meta:
        model = Code
        fields = [
            "code",
            "pool",
            "status",
            "customer",
            "issued_at",
            "issue_start",
            "issue_end",
            "available_from",
            "available_till",
            "valid_until",
            "times_redeemed",
        ]


def code_payload(code: Code, *, customer: str | None = None) -> dict:
    """Return what CodeOutput describes, without building a serializer per response: the
    serializer's field copies cost about a fifth of an issue request.

    With `customer`, the code's holder is named only if it is that customer: an answer never
    tells one customer's id to another."""
    payload = {name: getattr(code, name, None) for name in CodeOutput.Meta.fields}
    holder = code.issued_to if customer is None or code.issued_to == customer else None
    payload.update(pool=code.pool.slug, customer=holder)
    return payload


class BatchItemOutput(serializers.Serializer):
    customer = serializers.CharField()
    code = CodeOutput()
    again = serializers.BooleanField(help_text="Issued before under this key (a retry).")
    from_fallback = serializers.BooleanField(help_text="Taken from the pool's fallback pool.")


class BatchOutput(serializers.Serializer):
    pool = serializers.CharField()
    issued = BatchItemOutput(many=True)
    short = serializers.ListField(
        child=serializers.CharField(),
        help_text="Customers left without a code: the pool (and its fallback) ran dry. A retry "
        "under the same key issues to them once there is stock.",
    )
    limited = serializers.ListField(
        child=serializers.CharField(),
        help_text="Customers left without a code by an issuing limit: their own (codes of the "
        "pool per customer) or the pool's daily cap. A retry issues to them once it allows.",
    )


class RedemptionOutput(serializers.ModelSerializer):
    code = CodeOutput()

    class Meta:
        model = Redemption
        fields = ["code", "customer", "order_reference", "redeemed_at"]


def redemption_payload(redemption: Redemption) -> dict:
    return {
        "code": code_payload(redemption.code, customer=redemption.customer),
        "customer": redemption.customer,
        "order_reference": redemption.order_reference,
        "redeemed_at": redemption.redeemed_at,
    }


# The error bodies, per status, for the schema.


def _error(name: str, codes: list[str], **extra) -> serializers.Serializer:
    detail = {"code": serializers.ChoiceField(choices=codes), "message": serializers.CharField()}
    detail.update(extra)
    return inline_serializer(name, {"error": inline_serializer(f"{name}Detail", detail)})


REFUSALS = [reason.value for reason in Refusal]
GONE = [Refusal.POOL_ENDED.value, Refusal.WITHDRAWN.value]
CONFLICTS = [reason for reason in REFUSALS if reason != Refusal.UNKNOWN_CODE and reason not in GONE]
ERRORS = {
    400: OpenApiResponse(
        _error(
            "InvalidError",
            ["invalid", "parse_error", "bad_request"],
            fields=serializers.DictField(
                child=serializers.ListField(child=serializers.CharField()),
                required=False,
                help_text="For `invalid`: the messages per field.",
            ),
        ),
        "Missing or wrong fields (`invalid`, with `fields`), or a body that is not JSON, is "
        "nested too deeply or has an unknown charset (`parse_error`).",
    ),
    403: OpenApiResponse(
        _error("ForbiddenError", ["permission_denied", OPERATION_NOT_ALLOWED, POOL_NOT_ALLOWED]),
        "No valid API key, or outside the key's scope: an operation it may not call, a pool it "
        "may not touch.",
    ),
    406: OpenApiResponse(
        _error("NotAcceptableError", ["not_acceptable"]),
        "The request's Accept header does not take `application/json`.",
    ),
    404: OpenApiResponse(
        _error("NotFoundError", ["unknown_code", "unknown_pool", "not_found"]),
        "No such code in the pool (a wrong pool answers alike), or no such pool.",
    ),
    409: OpenApiResponse(
        _error("RefusedError", CONFLICTS), "Refused: the code says why (see the README)."
    ),
    410: OpenApiResponse(
        _error("GoneError", GONE),
        "The pool has ended, or the code was withdrawn: for good.",
    ),
    413: OpenApiResponse(
        _error("TooLargeError", ["payload_too_large"]), "The body is over 64 KiB."
    ),
    415: OpenApiResponse(
        _error("MediaTypeError", ["unsupported_media_type"]),
        "The body is not `application/json`.",
    ),
    429: OpenApiResponse(
        _error(
            "ThrottledError",
            ["throttled", KEY_LIMITED, CUSTOMER_LIMITED, CAP_REACHED],
            retry_after=serializers.FloatField(help_text="Seconds until a retry can succeed."),
        ),
        "A rate limit, issuing limit or guessing budget is spent (docs/http-api.md); retry "
        "after `retry_after` seconds (also the Retry-After header).",
    ),
}


def answers(ok, *statuses) -> dict:
    # Any operation can be refused a key (403) or asked for something other than JSON (406).
    return {200: ok, **{status: ERRORS[status] for status in sorted({*statuses, 403, 406})}}


class CheckOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    code = CodeOutput(allow_null=True)
    error = inline_serializer(
        "CheckRefusal",
        {"code": serializers.ChoiceField(choices=REFUSALS), "message": serializers.CharField()},
        allow_null=True,
    )
