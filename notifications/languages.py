"""Each staff member's language, for what is written to them outside a request.

A request knows its reader's language (the admin's chooser, else the browser's: LocaleMiddleware).
An e-mail or a report written by a worker does not, so the language a staff member last used the
admin in is remembered on their preference and read back here.
"""

from django.conf import settings
from django.utils import translation

from notifications.models import StaffPreference

SESSION_KEY = "promo_remembered_language"


def language_of(user) -> str:
    """The language to write to `user` in: the one they last used the admin in, else the default."""
    if user is None or not getattr(user, "pk", None):
        return settings.LANGUAGE_CODE
    language = (
        StaffPreference.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
    )
    return language or settings.LANGUAGE_CODE


def remember_language(user, language: str) -> None:
    StaffPreference.objects.update_or_create(user=user, defaults={"language": language})


class RememberLanguageMiddleware:
    """Records a signed-in staff member's language when it changes (once per session and change,
    so an ordinary page view writes nothing)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_staff:
            language = translation.get_language() or settings.LANGUAGE_CODE
            language = translation.get_supported_language_variant(language)
            if request.session.get(SESSION_KEY) != language:
                remember_language(user, language)
                request.session[SESSION_KEY] = language
        return self.get_response(request)
