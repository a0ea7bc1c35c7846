"""The language a staff member is written to in outside a request, for the apps below
notifications (a worker's import report, a job's outcome).

The staff member's choice is kept by notifications (notifications.languages.language_of), which
pools and imports may not import: notifications registers its lookup here when it starts
(NotificationsConfig.ready). Without it, the project's default language.
"""

from collections.abc import Callable

from django.conf import settings
from django.utils import translation

staff_language_lookups: list[Callable[[object], str]] = []


def staff_language(user) -> str:
    """Return the language to write to `user` in (None: nobody, the default)."""
    for lookup in staff_language_lookups:
        return lookup(user)
    return settings.LANGUAGE_CODE


def writing_to(user) -> translation.override:
    """`with writing_to(user):` — what is translated inside is in `user`'s language."""
    return translation.override(staff_language(user))
