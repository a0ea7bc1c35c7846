"""The JSON HTTP API: issue, mark issued, check and redeem codes, and read a pool's stock.

Callers authenticate with an API key (`Authorization: Api-Key <key>`) that staff create and
revoke in the admin. Every answer is JSON; an error is {"error": {"code", "message"}} with a
stable code.
"""

import hashlib
import time

from django.core.cache import cache
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView
from rest_framework_api_key.permissions import KeyParser

from .api_base import error_body
from .code_services import code_check, code_issue, code_mark_issued, code_redeem
from .models import CODE_MAX_LENGTH, CUSTOMER_MAX_LENGTH, Code, Pool, Redemption
from .refusals import CodeRefused, Refusal
from .selectors import pool_stock

UNKNOWN_POOL = "unknown_pool"


# Rate limits


class FixedWindowThrottle(SimpleRateThrottle):
    """Count requests per window with one atomic cache increment.

    DRF's SimpleRateThrottle reads and writes the list of every request time in the window, so
    at thousands of requests a minute each request moves a list that long, and concurrent
    requests overwrite each other's lists. A counter per window costs the same at any rate and
    never loses a request; it may let up to twice the rate through across a window's edge.
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
        if cache.add(window_key, 1, self.duration + 1):
            return True
        try:
            count = cache.incr(window_key)
        except ValueError:  # expired between add and incr
            cache.set(window_key, 1, self.duration + 1)
            return True
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds


class ApiKeyThrottle(FixedWindowThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        prefix = (KeyParser().get(request) or "").partition(".")[0]
        return self.cache_format % {"scope": self.scope, "ident": prefix}


class CustomerThrottle(FixedWindowThrottle):
    """Limit checks and redemptions per customer, whichever key the caller uses."""

    scope = "customer"

    def get_cache_key(self, request, view):
        customer = request.data.get("customer") if isinstance(request.data, dict) else None
        if not customer:
            return None
        ident = hashlib.sha256(str(customer).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


# Payloads


class IssueInput(serializers.Serializer):
    customer = serializers.CharField(max_length=CUSTOMER_MAX_LENGTH)
    idempotency_key = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class CodeInput(serializers.Serializer):
    code = serializers.CharField(max_length=CODE_MAX_LENGTH)
    customer = serializers.CharField(max_length=CUSTOMER_MAX_LENGTH)
    pool = serializers.CharField(
        max_length=64, required=False, help_text="Pool ID; needed when the code is in several."
    )


class RedeemInput(CodeInput):
    order_reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class CodeOutput(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    customer = serializers.CharField(source="issued_to")

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


def code_payload(code: Code) -> dict:
    """Return what CodeOutput describes, without building a serializer per response: the
    serializer's field copies cost about a fifth of an issue request."""
    payload = {name: getattr(code, name, None) for name in CodeOutput.Meta.fields}
    payload.update(pool=code.pool.slug, customer=code.issued_to)
    return payload


class RedemptionOutput(serializers.ModelSerializer):
    code = CodeOutput()

    class Meta:
        model = Redemption
        fields = ["code", "customer", "order_reference", "redeemed_at"]


class CheckOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    code = CodeOutput(allow_null=True)
    error = serializers.DictField(allow_null=True)


# Views


def _input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


ACTIVE_POOL_CACHE_SECONDS = 60


def _pool_by_slug(slug: str) -> Pool:
    # A launched pool can be cached with what cannot change once launched (id, pool ID,
    # multiple use): it cannot be deleted or go back to draft. Its status can change (pause,
    # end), so it is not cached: issuing reads it from the pool's row in its own statement.
    # This saves a query on every issue.
    cache_key = f"api:active-pool:{slug}"
    pool = cache.get(cache_key)
    if pool is None:
        pool = Pool.objects.filter(slug=slug).first()
        if pool is None:
            raise exceptions.NotFound(detail="There is no pool with this ID.", code=UNKNOWN_POOL)
        if pool.is_active:
            frozen = Pool(pk=pool.pk, slug=pool.slug, allow_multiple_use=pool.allow_multiple_use)
            cache.set(cache_key, frozen, ACTIVE_POOL_CACHE_SECONDS)
    return pool


def _named_pool(data: dict) -> Pool | None:
    """Return the pool named in the payload; an unknown pool answers like an unknown code."""
    if not data.get("pool"):
        return None
    pool = Pool.objects.filter(slug=data["pool"]).first()
    if pool is None:
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    return pool


# Checks and redemptions are rate-limited, since guessing codes is the attack; issuing, marking
# and reading stock are not, so that they cost no cache round trip.


class PoolIssueView(APIView):
    throttle_classes = []

    @extend_schema(request=IssueInput, responses=CodeOutput, summary="Issue a code")
    def post(self, request, slug):
        """Hand an available code of the pool to the customer; a retry with the same
        idempotency key returns the same code."""
        data = _input(IssueInput, request)
        code = code_issue(pool=_pool_by_slug(slug), **data)
        return Response(code_payload(code))


class PoolStockView(APIView):
    throttle_classes = []

    @extend_schema(
        responses=inline_serializer(
            "Stock", {"pool": serializers.CharField(), "stock": serializers.IntegerField()}
        ),
        summary="Codes that can still be issued",
    )
    def get(self, request, slug):
        pool = _pool_by_slug(slug)
        return Response({"pool": pool.slug, "stock": pool_stock(pool=pool)})


class CodeMarkIssuedView(APIView):
    throttle_classes = []

    @extend_schema(request=CodeInput, responses=CodeOutput, summary="Mark a code as issued")
    def post(self, request):
        data = _input(CodeInput, request)
        code = code_mark_issued(
            code=data["code"], customer=data["customer"], pool=_named_pool(data)
        )
        return Response(code_payload(code))


class CodeCheckView(APIView):
    throttle_classes = [ApiKeyThrottle, CustomerThrottle]

    @extend_schema(request=CodeInput, responses=CheckOutput, summary="Check a code")
    def post(self, request):
        """Tell whether the customer could redeem the code now, without redeeming it."""
        data = _input(CodeInput, request)
        try:
            code = code_check(code=data["code"], customer=data["customer"], pool=_named_pool(data))
        except CodeRefused as refused:
            reason = refused.reason
            return Response(
                {"valid": False, "code": None, **error_body(reason.value, reason.label)}
            )
        return Response({"valid": True, "code": code_payload(code), "error": None})


class CodeRedeemView(APIView):
    throttle_classes = [ApiKeyThrottle, CustomerThrottle]

    @extend_schema(request=RedeemInput, responses=RedemptionOutput, summary="Redeem a code")
    def post(self, request):
        """Redeem the code for the customer; repeating it with the same order reference
        returns the first redemption."""
        data = _input(RedeemInput, request)
        redemption = code_redeem(
            code=data["code"],
            customer=data["customer"],
            order_reference=data["order_reference"],
            pool=_named_pool(data),
        )
        return Response(RedemptionOutput(redemption).data)


urlpatterns = [
    path("pools/<slug:slug>/issue", PoolIssueView.as_view(), name="api-pool-issue"),
    path("pools/<slug:slug>/stock", PoolStockView.as_view(), name="api-pool-stock"),
    path("codes/mark-issued", CodeMarkIssuedView.as_view(), name="api-code-mark-issued"),
    path("codes/check", CodeCheckView.as_view(), name="api-code-check"),
    path("codes/redeem", CodeRedeemView.as_view(), name="api-code-redeem"),
    path("schema", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
]
