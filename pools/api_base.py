"""What the API's settings name (permission, exception handler) and its JSON error pages.

Kept apart from pools/api.py, whose views DRF can only import once its settings are loaded.
"""

from django.core.cache import caches
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import JsonResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import HasAPIKey

from .refusals import CodeRefused, Refusal

INVALID_FIELDS = "Some fields are missing or wrong."

# The HTTP status of each refusal; any other refusal answers 409 (a conflict with the state of
# the code or pool). An ended pool and a withdrawn code are gone for good: 410.
REFUSAL_STATUS = {
    Refusal.UNKNOWN_CODE: 404,
    Refusal.POOL_PAUSED: 409,
    Refusal.POOL_ENDED: 410,
    Refusal.WITHDRAWN: 410,
}


# How long a process trusts a key it checked without asking the database again: a key revoked in
# the admin stops working at once in the process that saved it, and in others within this time.
# Asking the database on every request would cost a round trip on every issue.
API_KEY_CACHE_SECONDS = 10
key_cache = caches["local"]


class HasValidAPIKey(HasAPIKey):
    message = "Give a valid API key in the Authorization header: “Api-Key <key>”."

    def has_permission(self, request, view) -> bool:
        key = self.get_key(request)
        if not key:
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


def api_key_cache_key(prefix: str) -> str:
    return f"api:key:{prefix}"


@receiver([post_save, post_delete], sender=APIKey)
def _forget_api_key(sender, instance, **kwargs):
    key_cache.delete(api_key_cache_key(instance.prefix))


# Errors


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def api_exception_handler(exc, context):
    """Give DRF's errors the API's shape: {"error": {"code", "message"}}."""
    if isinstance(exc, CodeRefused):
        status = REFUSAL_STATUS.get(exc.reason, 409)
        return Response(error_body(exc.reason.value, exc.reason.label), status=status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict)
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


def json_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "There is no such API address."), status=404)


def json_server_error(request):
    return JsonResponse(
        error_body("server_error", "Something went wrong on our side; try again later."),
        status=500,
    )
