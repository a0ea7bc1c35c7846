"""What the API's settings name (permission, exception handler) and its JSON error pages.

Kept apart from pools/api.py, whose views DRF can only import once its settings are loaded.
"""

import json

from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import JsonResponse
from django.utils import timezone, translation
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import HasAPIKey, KeyParser

from .api_keys import (
    OPERATION_NOT_ALLOWED,
    OPERATION_NOT_ALLOWED_MESSAGE,
    POOL_NOT_ALLOWED,
    POOL_NOT_ALLOWED_MESSAGE,
    key_rights,
)
from .metrics import REFUSALS
from .refusals import CodeRefused, Refusal

INVALID_FIELDS = "Some fields are missing or wrong."
PAYLOAD_TOO_LARGE = "The request body is larger than {limit} bytes."
NOT_JSON = "The request body is not JSON: {reason}"
TOO_DEEP = "The JSON is nested more than {depth} levels deep."
NOT_FOUND = "There is no such API address."
BAD_REQUEST = "The request cannot be read."
FORBIDDEN = "This request is not allowed."
SERVER_ERROR = "Something went wrong on our side; try again later."

# The longest valid body (a redemption with every field at its longest, each character written
# as a \uXXXX escape) is about 3.4 KiB; anything much larger is not a request of this API. Django's
# own limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 20 MiB here for pasted lists) would answer with an
# HTML page.
API_MAX_BODY_BYTES = 64 * 1024
# Valid bodies are flat objects; json.load would recurse about a thousand levels before failing.
API_MAX_JSON_DEPTH = 16

# The HTTP status of each refusal; any other refusal answers 409 (a conflict with the state of
# the code or pool). An ended pool and a withdrawn code are gone for good: 410.
REFUSAL_STATUS = {
    Refusal.UNKNOWN_CODE: 404,
    Refusal.POOL_PAUSED: 409,
    Refusal.POOL_ENDED: 410,
    Refusal.WITHDRAWN: 410,
}


class ApiSpeaksEnglish:
    """Answer the HTTP API in English whatever the caller's Accept-Language: its messages are
    read by programs and their developers, and the admin's texts (a refusal's, say) are
    translated lazily, so they come out here in English. Placed after LocaleMiddleware, it holds
    while the response is rendered."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)


# How long a process trusts a key it checked without asking the database again: a key revoked in
# the admin stops working at once in the process that saved it, and in others within this time.
# Asking the database on every request would cost a round trip on every issue.
API_KEY_CACHE_SECONDS = 10
API_KEY_MAX_LENGTH = 100
key_cache = caches["local"]


class HasValidAPIKey(HasAPIKey):
    message = "Give a valid API key in the Authorization header: “Api-Key <key>”."

    def has_permission(self, request, view) -> bool:
        key = self.get_key(request)
        # A key is "<8-character prefix>.<32-character secret>"; anything much longer is not one,
        # and must not become a cache key.
        if not key or len(key) > API_KEY_MAX_LENGTH:
            return False
        cache_key = api_key_cache_key(key.partition(".")[0])
        hashed = key_cache.get(cache_key)
        if hashed and self.model.objects.key_generator.verify(key, hashed):
            return True
        try:
            api_key = self.model.objects.get_from_key(key)
        except self.model.DoesNotExist:
            return False
        if api_key.has_expired:
            return False
        seconds = API_KEY_CACHE_SECONDS
        if api_key.expiry_date:
            seconds = min(seconds, (api_key.expiry_date - timezone.now()).total_seconds())
        key_cache.set(cache_key, api_key.hashed_key, seconds)
        return True


class KeyMayCall(BasePermission):
    """Let a key call a view's `operation` only if its scope names it (pools/api_keys.py)."""

    message = OPERATION_NOT_ALLOWED_MESSAGE
    code = OPERATION_NOT_ALLOWED

    def has_permission(self, request, view) -> bool:
        operation = getattr(view, "operation", None)
        return operation is None or key_rights(caller_prefix(request)).may(operation)


def pool_reach_check(request, slug: str) -> None:
    """Refuse (403 pool_not_allowed) a pool outside the key's scope, before the pool is looked
    up: a key limited to some pools cannot tell the others' pool IDs from made-up ones."""
    if not key_rights(caller_prefix(request)).reaches(slug):
        raise exceptions.PermissionDenied(POOL_NOT_ALLOWED_MESSAGE, code=POOL_NOT_ALLOWED)


def caller_prefix(request) -> str:
    """Return the id of the caller's API key (its prefix; the key is valid by now)."""
    return (KeyParser().get(request) or "").partition(".")[0]


def api_key_cache_key(prefix: str) -> str:
    return f"api:key:{prefix}"


@receiver([post_save, post_delete], sender=APIKey)
def _forget_api_key(sender, instance, **kwargs):
    key_cache.delete(api_key_cache_key(instance.prefix))


# Reading bodies


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = PAYLOAD_TOO_LARGE.format(limit=API_MAX_BODY_BYTES)


class JSONBodyParser(BaseParser):
    """Parse a JSON body of at most API_MAX_BODY_BYTES, nested at most API_MAX_JSON_DEPTH deep.

    Not a subclass of DRF's JSONParser, which DRF feeds `request.body`: Django refuses a body
    over its own limit there with an HTML page. This one reads the stream itself, one byte past
    the limit, and turns every way a body can be unreadable (encoding, unknown charset, depth,
    numbers too long to convert) into a ParseError.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        # A view that takes lists (issue-batch) says how much it reads.
        view = (parser_context or {}).get("view")
        limit = getattr(view, "max_body_bytes", API_MAX_BODY_BYTES)
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(PAYLOAD_TOO_LARGE.format(limit=limit))
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(PAYLOAD_TOO_LARGE.format(limit=limit))
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        charset = dict(_media_params(media_type)).get("charset", encoding)
        try:
            text = raw.decode(charset)
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(TOO_DEEP.format(depth=API_MAX_JSON_DEPTH)) from None
        except (ValueError, LookupError) as error:  # UnicodeDecodeError is a ValueError
            raise exceptions.ParseError(NOT_JSON.format(reason=error)) from None
        if _depth_over(data, API_MAX_JSON_DEPTH):
            raise exceptions.ParseError(TOO_DEEP.format(depth=API_MAX_JSON_DEPTH))
        return data


def _media_params(media_type: str | None):
    for part in (media_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        yield name.strip().lower(), value.strip().strip('"')


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON value")


def _depth_over(data, limit: int) -> bool:
    """Return True if `data` nests containers deeper than `limit` (without recursing)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


# Errors


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _pool_named_in(context) -> str:
    """The pool ID a refused call named (its address, or its body's "pool"), if such a pool
    exists: a label a caller cannot invent."""
    from .models import Pool

    request = context.get("request")
    named = context.get("kwargs", {}).get("slug") or (
        request.data.get("pool") if request is not None and isinstance(request.data, dict) else ""
    )
    if isinstance(named, str) and named and Pool.objects.filter(slug=named).exists():
        return named
    return ""


def api_exception_handler(exc, context):
    """Give DRF's errors the API's shape: {"error": {"code", "message"}}."""
    if isinstance(exc, CodeRefused):
        REFUSALS.labels(pool=_pool_named_in(context), reason=exc.reason.value).inc()
        status = REFUSAL_STATUS.get(exc.reason, 409)
        return Response(error_body(exc.reason.value, exc.reason.label), status=status)
    if isinstance(exc, DjangoValidationError):
        # A ValidationError raised without a field (ValidationError("…")) has no message_dict.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", INVALID_FIELDS, fields=exc.detail)
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        message = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
        extra = {"retry_after": exc.wait} if isinstance(exc, exceptions.Throttled) else {}
        response.data = error_body(code if isinstance(code, str) else "error", message, **extra)
    return response


def schema_retry_after(result, generator, request, public):
    """Document the Retry-After header DRF sends with every 429 (drf-spectacular has no way to
    say it per response)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            throttled = operation.get("responses", {}).get("429")
            if throttled is not None:
                throttled["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Seconds until a retry can succeed.",
                    }
                }
    return result


def json_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", NOT_FOUND), status=404)


def json_bad_request(request, exception=None):
    """Answer what Django refuses before a view runs (a disallowed Host header, a body over
    Django's own limit) in the API's shape."""
    if isinstance(exception, RequestDataTooBig):
        body = error_body("payload_too_large", PayloadTooLarge.default_detail)
        return JsonResponse(body, status=413)
    return JsonResponse(error_body("bad_request", BAD_REQUEST), status=400)


def json_forbidden(request, exception=None):
    return JsonResponse(error_body("permission_denied", FORBIDDEN), status=403)


def json_server_error(request):
    return JsonResponse(error_body("server_error", SERVER_ERROR), status=500)
