"""The admin's home page: what needs attention first, then the apps, campaigns and pools first
and API keys last."""

from django import template
from django.utils.safestring import mark_safe

register = template.Library()

# Apps and models in the order a marketing manager looks for them; others follow, API keys last.
APP_ORDER = ["pools", "imports", "notifications"]
LAST_APPS = ["auth", "rest_framework_api_key"]
MODEL_ORDER = {"pools": ["Campaign", "Pool", "Code", "Withdrawal"]}


@register.simple_tag(takes_context=True)
def attention_sections(context) -> str:
    from pools.admin import home_page

    request = context["request"]
    return mark_safe("".join(str(section(request)) for section in home_page.sections))


@register.simple_tag
def home_app_list(app_list):
    def app_key(app):
        label = app["app_label"]
        if label in APP_ORDER:
            return (0, APP_ORDER.index(label))
        if label in LAST_APPS:
            return (2, LAST_APPS.index(label))
        return (1, 0)

    ordered = sorted(app_list, key=app_key)
    for app in ordered:
        order = MODEL_ORDER.get(app["app_label"])
        if order:
            app["models"].sort(
                key=lambda m: order.index(m["object_name"]) if m["object_name"] in order else 99
            )
    return ordered
