"""Each staff member's language, for what is written to them outside a request.

A request knows its reader's language (the admin's chooser, else the browser's: LocaleMiddleware).
An e-mail or a report written by a worker does not, so the language a staff member signed in with,
or last picked in the admin's chooser, is remembered on their preference and read back here.
"""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.urls import reverse
from django.utils import translation

from notifications.models import StaffPreference


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


@receiver(user_logged_in)
def _remember_on_sign_in(sender, request, user, **kwargs):
    """Signing in to the admin records the language the page was shown in (the chooser's
    cookie, else the browser's)."""
    if user.is_staff and getattr(request, "LANGUAGE_CODE", None):
        remember_language(user, translation.get_supported_language_variant(request.LANGUAGE_CODE))


class RememberLanguageMiddleware:
    """Records the language a signed-in staff member picks in the admin's chooser (Django's
    set_language view). Nothing else writes: an ordinary page view costs no query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method == "POST" and request.path_info == reverse("set_language"):
            user = getattr(request, "user", None)
            language = request.POST.get("language", "")
            if (
                user is not None
                and user.is_authenticated
                and user.is_staff
                and language in dict(settings.LANGUAGES)
            ):
                remember_language(user, language)
        return response
