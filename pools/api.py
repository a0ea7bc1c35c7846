"""The JSON HTTP API: issue, mark issued, check and redeem codes, and read a pool's stock.

Callers authenticate with an API key (`Authorization: Api-Key <key>`) that staff create and
revoke in the admin. Every answer is JSON; an error is {"error": {"code", "message"}} with a
stable code.
"""

import time
from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, validate_slug
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView
from rest_framework_api_key.permissions import KeyParser

from .api_base import error_body
from .code_services import (
    BATCH_MAX,
    CUSTOMER_REQUIRED,
    code_check,
    code_issue,
    code_issue_batch,
    code_mark_issued,
    code_redeem,
    code_release,
    customer_clean,
)
from .guessing import GuessingLimited, guess_failed, guesses_allowed
from .models import CODE_MAX_LENGTH, CUSTOMER_MAX_LENGTH, Code, Pool, Redemption
from .refusals import CodeRefused, Refusal
from .selectors import pool_stock
from .shared_cache import shared_get, shared_incr, shared_set

UNKNOWN_POOL = "unknown_pool"
UNKNOWN_POOL_MESSAGE = "There is no pool with this ID."
INVALID_TEXT = "Give text without NUL characters."
POOL_ID_MAX_LENGTH = Pool._meta.get_field("slug").max_length
TEXT_MAX_LENGTH = 200


# Rate limits


class FixedWindowThrottle(SimpleRateThrottle):
    """Count requests per window with one atomic cache increment.

    DRF's SimpleRateThrottle reads and writes the list of every request time in the window, so
    at thousands of requests a minute each request moves a list that long, and concurrent
    requests overwrite each other's lists. A counter per window costs the same at any rate and
    never loses a request; it may let up to twice the rate through across a window's edge.
    The counter lives in the shared cache, or in this process while that is unreachable.
    """

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = time.time()
        window_key = f"{self.key}:{int(now // self.duration)}"
        self.wait_seconds = self.duration - now % self.duration
        return shared_incr(window_key, self.duration + 1) <= self.num_requests

    def wait(self):
        return self.wait_seconds


class ApiKeyThrottle(FixedWindowThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": _caller(request)}


def _caller(request) -> str:
    """Return the id of the caller's API key (its prefix; the key is valid by now)."""
    return (KeyParser().get(request) or "").partition(".")[0]


@contextmanager
def _guessing_guard(request, data: dict, *, per_customer: bool = True):
    """Apply the guessing limits (pools/guessing.py) to one attempt on a code."""
    caller = _caller(request)
    customer = data["customer"] if per_customer else None
    try:
        guesses_allowed(caller=caller, pool=data["pool"], customer=customer)
    except GuessingLimited as limited:
        raise exceptions.Throttled(wait=limited.retry_after) from None
    try:
        yield
    except CodeRefused as refused:
        if refused.reason == Refusal.UNKNOWN_CODE:
            guess_failed(caller=caller, pool=data["pool"])
        raise


# Payloads


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
CONFLICTS = [reason for reason in REFUSALS if reason != Refusal.UNKNOWN_CODE]
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
    403: OpenApiResponse(_error("ForbiddenError", ["permission_denied"]), "No valid API key."),
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
        _error("GoneError", ["pool_ended", "withdrawn"]),
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
            ["throttled"],
            retry_after=serializers.FloatField(help_text="Seconds until a retry can succeed."),
        ),
        "A rate limit or guessing budget is spent (see the README); retry after "
        "`retry_after` seconds.",
    ),
}


def _answers(ok, *statuses) -> dict:
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


# Views


def _input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


ACTIVE_POOL_CACHE_SECONDS = 60


def _pool_or_none(slug: str) -> Pool | None:
    # A launched pool can be cached with what cannot change once launched (id, pool ID,
    # multiple use): it cannot be deleted or go back to draft. Its status can change (pause,
    # end), so it is not cached: issuing reads it from the pool's row in its own statement.
    # This saves a query on every issue. When the shared cache is unreachable this reads
    # PostgreSQL (shared_cache.py).
    cache_key = f"api:active-pool:{slug}"
    pool = shared_get(cache_key)
    if pool is None:
        pool = Pool.objects.filter(slug=slug).first()
        if pool is not None and pool.is_active:
            frozen = Pool(pk=pool.pk, slug=pool.slug, allow_multiple_use=pool.allow_multiple_use)
            shared_set(cache_key, frozen, ACTIVE_POOL_CACHE_SECONDS)
    return pool


def _pool_by_slug(slug: str) -> Pool:
    pool = _pool_or_none(slug)
    if pool is None:
        raise exceptions.NotFound(detail=UNKNOWN_POOL_MESSAGE, code=UNKNOWN_POOL)
    return pool


def _named_pool(data: dict) -> Pool:
    """Return the pool named in the payload; an unknown pool answers like an unknown code.

    Read from the database, not the cache: check and redeem need the pool's status and rules.
    """
    pool = Pool.objects.filter(slug=data["pool"]).first()
    if pool is None:
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    return pool


# Checks and redemptions are limited (pools/guessing.py), since guessing codes is the attack,
# and marks count against the budget of failures; issuing and reading stock are not limited,
# so that they cost no cache round trip.


class PoolIssueView(APIView):
    throttle_classes = []

    @extend_schema(
        request=IssueInput,
        responses=_answers(CodeOutput, 400, 403, 404, 409, 413, 415),
        summary="Issue a code",
    )
    def post(self, request, slug):
        """Hand an available code of the pool to the customer; a retry with the same
        idempotency key returns the same code."""
        data = _input(IssueInput, request)
        code = code_issue(pool=_pool_by_slug(slug), caller=_caller(request), **data)
        return Response(code_payload(code))


# 10,000 customer ids of up to 200 characters each, with room for JSON's quotes and commas.
BATCH_MAX_BODY_BYTES = 4 * 1024 * 1024


class PoolIssueBatchView(APIView):
    throttle_classes = []
    max_body_bytes = BATCH_MAX_BODY_BYTES

    @extend_schema(
        request=IssueBatchInput,
        responses=_answers(BatchOutput, 400, 403, 404, 409, 410, 413, 415),
        summary="Issue codes to a batch of customers",
    )
    def post(self, request, slug):
        """Hand a code of the pool to each customer (each once). One idempotency key covers the
        batch: a retry returns the same codes. Customers left without a code (the pool ran dry)
        are listed in `short`."""
        data = _input(IssueBatchInput, request)
        pool = _pool_by_slug(slug)
        outcome = code_issue_batch(pool=pool, caller=_caller(request), **data)
        issued = [
            {
                "customer": item.customer,
                "code": code_payload(item.code),
                "again": item.again,
                "from_fallback": item.from_fallback,
            }
            for item in outcome.issued
        ]
        return Response({"pool": pool.slug, "issued": issued, "short": outcome.short})


class PoolStockView(APIView):
    throttle_classes = []

    @extend_schema(
        responses=_answers(
            inline_serializer(
                "Stock", {"pool": serializers.CharField(), "stock": serializers.IntegerField()}
            ),
            403,
            404,
        ),
        summary="Codes that can still be issued",
    )
    def get(self, request, slug):
        pool = _pool_by_slug(slug)
        return Response({"pool": pool.slug, "stock": pool_stock(pool=pool)})


class CodeMarkIssuedView(APIView):
    # Marking printed codes comes in bulk, for one customer id or few: only the budget of
    # failures applies, since marking a guessed code as your own is guessing too.
    throttle_classes = []

    @extend_schema(
        request=CodeInput,
        responses=_answers(CodeOutput, 400, 403, 404, 409, 413, 415, 429),
        summary="Mark a code as issued",
    )
    def post(self, request):
        data = _input(CodeInput, request)
        with _guessing_guard(request, data, per_customer=False):
            code = code_mark_issued(
                code=data["code"],
                customer=data["customer"],
                pool=_named_pool(data),
                caller=_caller(request),
            )
        return Response(code_payload(code))


class CodeCheckView(APIView):
    throttle_classes = [ApiKeyThrottle]

    @extend_schema(
        request=CodeInput,
        responses=_answers(CheckOutput, 400, 403, 413, 415, 429),
        summary="Check a code",
    )
    def post(self, request):
        """Tell whether the customer could redeem the code now, without redeeming it. A
        refusal answers 200 with `valid: false` and the reason in `error`."""
        data = _input(CodeInput, request)
        try:
            with _guessing_guard(request, data):
                code = code_check(
                    code=data["code"],
                    customer=data["customer"],
                    pool=_named_pool(data),
                    caller=_caller(request),
                )
        except CodeRefused as refused:
            reason = refused.reason
            return Response(
                {"valid": False, "code": None, **error_body(reason.value, reason.label)}
            )
        payload = code_payload(code, customer=data["customer"])
        return Response({"valid": True, "code": payload, "error": None})


class CodeRedeemView(APIView):
    throttle_classes = [ApiKeyThrottle]

    @extend_schema(
        request=RedeemInput,
        responses=_answers(RedemptionOutput, 400, 403, 404, 409, 413, 415, 429),
        summary="Redeem a code",
    )
    def post(self, request):
        """Redeem the code for the customer; repeating it with the same order reference
        returns the first redemption."""
        data = _input(RedeemInput, request)
        with _guessing_guard(request, data):
            redemption = code_redeem(
                code=data["code"],
                customer=data["customer"],
                order_reference=data["order_reference"],
                pool=_named_pool(data),
                caller=_caller(request),
            )
        return Response(redemption_payload(redemption))


class CodeReleaseView(APIView):
    # Naming a code is guessing too: a failure counts against the budget of failures.
    throttle_classes = [ApiKeyThrottle]

    @extend_schema(
        request=ReleaseInput,
        responses=_answers(CodeOutput, 400, 403, 404, 409, 413, 415, 429),
        summary="Give an issued code back",
    )
    def post(self, request):
        """Return an issued, unredeemed code to stock (its message was never delivered), under
        the idempotency key it was issued with; any other key answers like an unknown code."""
        data = _input(ReleaseInput, request)
        with _guessing_guard(request, data, per_customer=False):
            code = code_release(
                code=data["code"], pool=_named_pool(data), idempotency_key=data["idempotency_key"]
            )
        return Response(code_payload(code))


urlpatterns = [
    path("pools/<slug:slug>/issue", PoolIssueView.as_view(), name="api-pool-issue"),
    path(
        "pools/<slug:slug>/issue-batch", PoolIssueBatchView.as_view(), name="api-pool-issue-batch"
    ),
    path("pools/<slug:slug>/stock", PoolStockView.as_view(), name="api-pool-stock"),
    path("codes/mark-issued", CodeMarkIssuedView.as_view(), name="api-code-mark-issued"),
    path("codes/check", CodeCheckView.as_view(), name="api-code-check"),
    path("codes/redeem", CodeRedeemView.as_view(), name="api-code-redeem"),
    path("codes/release", CodeReleaseView.as_view(), name="api-code-release"),
    path("schema", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
]
