"""The JSON HTTP API: issue, mark issued, check and redeem codes, and read a pool's stock.

Callers authenticate with an API key (`Authorization: Api-Key <key>`) that staff create and
revoke in the admin. Every answer is JSON; an error is {"error": {"code", "message"}} with a
stable code. What each operation takes and answers (its payloads and error bodies) is in
pools/api_payloads.py.
"""

import time
from contextlib import contextmanager

from django.db.models.signals import post_save
from django.dispatch import receiver
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from .api_base import caller_prefix, error_body, pool_reach_check
from .api_payloads import (
    BatchOutput,
    CheckOutput,
    CodeInput,
    CodeOutput,
    IssueBatchInput,
    IssueInput,
    RedeemInput,
    RedemptionOutput,
    ReleaseInput,
    answers,
    code_payload,
    redemption_payload,
)
from .code_services import (
    api_key_namespace,
    batch_key,
    code_check,
    code_issue,
    code_issue_batch,
    code_mark_issued,
    code_redeem,
    code_release,
)
from .guessing import GuessingLimited, guess_failed, guesses_allowed
from .issuing_limits import (
    IssueLimited,
    Reservation,
    fallback_for,
    fallback_issues_count,
    issue_reserve_or_retry,
)
from .models import ApiOperation, Pool
from .refusals import CodeRefused, Refusal
from .selectors import pool_stock
from .shared_cache import shared_delete, shared_get, shared_incr, shared_set

UNKNOWN_POOL = "unknown_pool"
UNKNOWN_POOL_MESSAGE = "There is no pool with this ID."


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


_caller = caller_prefix


@contextmanager
def _guessing_guard(request, data: dict, *, per_customer: bool = True):
    """Apply the guessing limits (pools/guessing.py) to one attempt on a code, once the pool
    is known to be in the key's scope: a call on another pool spends no budget, neither the
    key's nor the customer's, and cannot tell that pool's state from a made-up one's."""
    pool_reach_check(request, data["pool"])
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


# Views


def _input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


ACTIVE_POOL_CACHE_SECONDS = 60


def _pool_or_none(slug: str) -> Pool | None:
    # A launched pool can be cached with what cannot change once launched (id, pool ID,
    # multiple use), and its daily cap, forgotten when the pool is saved: it cannot be deleted
    # or go back to draft. Its status can change (pause,
    # end), so it is not cached: issuing reads it from the pool's row in its own statement.
    # This saves a query on every issue. When the shared cache is unreachable this reads
    # PostgreSQL (shared_cache.py).
    cache_key = _active_pool_cache_key(slug)
    pool = shared_get(cache_key)
    if pool is None:
        pool = Pool.objects.filter(slug=slug).first()
        if pool is not None and pool.is_active:
            frozen = Pool(
                pk=pool.pk,
                slug=pool.slug,
                allow_multiple_use=pool.allow_multiple_use,
                daily_issue_cap=pool.daily_issue_cap,
                fallback_pool_id=pool.fallback_pool_id,
            )
            shared_set(cache_key, frozen, ACTIVE_POOL_CACHE_SECONDS)
    return pool


def _active_pool_cache_key(slug: str) -> str:
    return f"api:active-pool:{slug}"


@receiver(post_save, sender=Pool)
def _forget_active_pool(sender, instance, **kwargs):
    # The daily cap and the fallback can change while the pool is active: the next issue reads
    # them anew.
    shared_delete(_active_pool_cache_key(instance.slug))


def _pool_by_slug(request, slug: str) -> Pool:
    pool_reach_check(request, slug)
    pool = _pool_or_none(slug)
    if pool is None:
        raise exceptions.NotFound(detail=UNKNOWN_POOL_MESSAGE, code=UNKNOWN_POOL)
    return pool


def _named_pool(request, data: dict) -> Pool:
    """Return the pool named in the payload; an unknown pool answers like an unknown code, a
    pool outside the key's scope 403 pool_not_allowed (whatever the code).

    Read from the database, not the cache: check and redeem need the pool's status and rules.
    """
    pool_reach_check(request, data["pool"])
    pool = Pool.objects.filter(slug=data["pool"]).first()
    if pool is None:
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    return pool


# Checks and redemptions are limited (pools/guessing.py), since guessing codes is the attack,
# and marks count against the budget of failures; issuing has limits of its own
# (pools/issuing_limits.py); reading stock is not limited, so that it costs no cache round trip.


def _own_key(request, key: str) -> str:
    """Return an idempotency key in the namespace of the caller's API key: no key reaches the
    issues of another, nor an assignment's (pools.code_services.api_key_namespace)."""
    return api_key_namespace(_caller(request), key)


def _reserve(request, pool: Pool, customers: list[str], key_of) -> Reservation:
    """Reserve issuing under the limits (pools/issuing_limits.py); 429 with Retry-After when
    nobody can be issued a code nor has one to retry."""
    try:
        return issue_reserve_or_retry(
            caller=_caller(request), pool=pool, customers=customers, key_of=key_of
        )
    except IssueLimited as limited:
        raise exceptions.Throttled(
            wait=limited.retry_after, detail=limited.message, code=limited.code
        ) from None


class PoolIssueView(APIView):
    throttle_classes = []
    operation = ApiOperation.ISSUE

    @extend_schema(
        request=IssueInput,
        responses=answers(CodeOutput, 400, 403, 404, 409, 410, 413, 415, 429),
        summary="Issue a code",
    )
    def post(self, request, slug):
        """Hand an available code of the pool to the customer; a retry with the same
        idempotency key returns the same code."""
        data = _input(IssueInput, request)
        key = _own_key(request, data["idempotency_key"])
        pool = _pool_by_slug(request, slug)
        customer = data["customer"]
        reservation = _reserve(request, pool, [customer], lambda customer: key)
        fallback, fallback_open = fallback_for(pool)
        try:
            code = code_issue(
                pool=pool,
                customer=customer,
                idempotency_key=key,
                caller=_caller(request),
                fallback=fallback_open,
            )
        except BaseException:
            reservation.settle(issued=[])
            raise
        # A retry hands out nothing new: it is refunded, as a batch's retries are.
        new = [] if getattr(code, "again", False) else [customer]
        reservation.settle(issued=new)
        fallback_issues_count(fallback, new if code.pool_id != pool.pk else [])
        return Response(code_payload(code))


# 10,000 customer ids of up to 200 characters each, with room for JSON's quotes and commas.
BATCH_MAX_BODY_BYTES = 4 * 1024 * 1024


class PoolIssueBatchView(APIView):
    throttle_classes = []
    max_body_bytes = BATCH_MAX_BODY_BYTES
    operation = ApiOperation.ISSUE_BATCH

    @extend_schema(
        request=IssueBatchInput,
        responses=answers(BatchOutput, 400, 403, 404, 409, 410, 413, 415, 429),
        summary="Issue codes to a batch of customers",
    )
    def post(self, request, slug):
        """Hand a code of the pool to each customer (each once). One idempotency key covers the
        batch: a retry returns the same codes. Customers left without a code (the pool ran dry)
        are listed in `short`."""
        data = _input(IssueBatchInput, request)
        key = _own_key(request, data["idempotency_key"])
        pool = _pool_by_slug(request, slug)
        customers = list(dict.fromkeys(data["customers"]))
        reservation = _reserve(request, pool, customers, lambda customer: batch_key(key, customer))
        fallback, fallback_open = fallback_for(pool)
        try:
            outcome = code_issue_batch(
                pool=pool,
                customers=reservation.granted,
                idempotency_key=key,
                caller=_caller(request),
                fallback=fallback_open,
            )
        except BaseException:
            reservation.settle(issued=[])
            raise
        reservation.settle(issued=[item.customer for item in outcome.issued if not item.again])
        fallback_issues_count(
            fallback, [i.customer for i in outcome.issued if i.from_fallback and not i.again]
        )
        issued = [
            {
                "customer": item.customer,
                "code": code_payload(item.code),
                "again": item.again,
                "from_fallback": item.from_fallback,
            }
            for item in outcome.issued
        ]
        return Response(
            {
                "pool": pool.slug,
                "issued": issued,
                "short": outcome.short,
                "limited": reservation.limited,
            }
        )


class PoolStockView(APIView):
    throttle_classes = []
    operation = ApiOperation.STOCK

    @extend_schema(
        responses=answers(
            inline_serializer(
                "Stock", {"pool": serializers.CharField(), "stock": serializers.IntegerField()}
            ),
            403,
            404,
        ),
        summary="Codes that can still be issued",
    )
    def get(self, request, slug):
        pool = _pool_by_slug(request, slug)
        return Response({"pool": pool.slug, "stock": pool_stock(pool=pool)})


class CodeMarkIssuedView(APIView):
    # Marking printed codes comes in bulk, for one customer id or few: only the budget of
    # failures applies, since marking a guessed code as your own is guessing too.
    throttle_classes = []
    operation = ApiOperation.MARK_ISSUED

    @extend_schema(
        request=CodeInput,
        responses=answers(CodeOutput, 400, 403, 404, 409, 410, 413, 415, 429),
        summary="Mark a code as issued",
    )
    def post(self, request):
        data = _input(CodeInput, request)
        with _guessing_guard(request, data, per_customer=False):
            code = code_mark_issued(
                code=data["code"],
                customer=data["customer"],
                pool=_named_pool(request, data),
                caller=_caller(request),
            )
        return Response(code_payload(code))


class CodeCheckView(APIView):
    throttle_classes = [ApiKeyThrottle]
    operation = ApiOperation.CHECK

    @extend_schema(
        request=CodeInput,
        responses=answers(CheckOutput, 400, 403, 413, 415, 429),
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
                    pool=_named_pool(request, data),
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
    operation = ApiOperation.REDEEM

    @extend_schema(
        request=RedeemInput,
        responses=answers(RedemptionOutput, 400, 403, 404, 409, 410, 413, 415, 429),
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
                pool=_named_pool(request, data),
                caller=_caller(request),
            )
        return Response(redemption_payload(redemption))


class CodeReleaseView(APIView):
    # Naming a code is guessing too: a failure counts against the budget of failures.
    throttle_classes = [ApiKeyThrottle]
    operation = ApiOperation.RELEASE

    @extend_schema(
        request=ReleaseInput,
        responses=answers(CodeOutput, 400, 403, 404, 409, 413, 415, 429),
        summary="Give an issued code back",
    )
    def post(self, request):
        """Return an issued, unredeemed code to stock (its message was never delivered), under
        the idempotency key it was issued with; any other key answers like an unknown code."""
        data = _input(ReleaseInput, request)
        with _guessing_guard(request, data, per_customer=False):
            code = code_release(
                code=data["code"],
                pool=_named_pool(request, data),
                idempotency_key=_own_key(request, data["idempotency_key"]),
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
