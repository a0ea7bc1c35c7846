"""The staff groups that exist after `migrate`: managers can do everything, viewers only look."""

from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS

MANAGERS = "Promo managers"
VIEWERS = "Promo viewers"
# API keys are the HTTP API's credentials, which managers hand to other systems.
STAFF_APPS = ("pools", "imports", "notifications", "rest_framework_api_key")


def staff_groups_sync(*, using=DEFAULT_DB_ALIAS, **kwargs):
    """Create the staff groups and give them every permission of the product's apps.

    Adds and never removes, so that permissions granted by hand stay.
    """
    permissions = Permission.objects.using(using).filter(content_type__app_label__in=STAFF_APPS)
    managers, _ = Group.objects.using(using).get_or_create(name=MANAGERS)
    managers.permissions.add(*permissions)
    viewers, _ = Group.objects.using(using).get_or_create(name=VIEWERS)
    viewers.permissions.add(*permissions.filter(codename__startswith="view_"))
