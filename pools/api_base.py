"""What the API's settings name (permission, exception handler) and its JSON error pages.

Kept apart from pools/api.py, whose views DRF can only import once its settings are loaded.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework_api_key.permissions import HasAPIKey

from .services import CodeRefused, Refusal

INVALID_FIELDS = "Some fields are missing or wrong."


class HasValidAPIKey(HasAPIKey):
    message = "Give a valid API key in the Authorization header: “Api-Key <key>”."


# Errors


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def api_exception_handler(exc, context):
    """Give DRF's errors the API's shape: {"error": {"code", "message"}}."""
    if isinstance(exc, CodeRefused):
        status = 404 if exc.reason == Refusal.UNKNOWN_CODE else 409
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
