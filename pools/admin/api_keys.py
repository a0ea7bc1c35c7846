"""API keys with their scopes: the operations each key may call and the pools it may touch, shown
and edited on the key's own page (rest_framework_api_key's admin, with the scope inline)."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from ..api_keys import key_rights_forget
from ..models import ApiKeyScope, ApiOperation

OPERATIONS_REQUIRED = _("Choose at least one operation this key may call.")
EVERY_POOL = _("every pool")
REACH_REQUIRED = _("Tick “May use every pool”, or name the campaigns or pools this key may use.")
REACH_BOTH = _(
    "A key that may use every pool needs no campaigns or pools named: untick it or clear them."
)


class ApiKeyScopeForm(forms.ModelForm):
    operations = forms.MultipleChoiceField(
        choices=ApiOperation.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": OPERATIONS_REQUIRED},
        label=_("May call"),
        help_text=_(
            "A key may call only these. A checkout needs Check and Redeem; a mailer, Issue and "
            "Issue codes to a batch."
        ),
    )

    class Meta:
        model = ApiKeyScope
        fields = ("operations", "every_pool", "campaigns", "pools")

    def clean(self):
        cleaned = super().clean()
        named = cleaned.get("campaigns") or cleaned.get("pools")
        if not cleaned.get("every_pool") and not named:
            raise forms.ValidationError(REACH_REQUIRED)
        if cleaned.get("every_pool") and named:
            raise forms.ValidationError(REACH_BOTH)
        return cleaned


class ApiKeyScopeInline(admin.StackedInline):
    model = ApiKeyScope
    form = ApiKeyScopeForm
    can_delete = False
    # A new key gets its scope on the same page: a key without one may do nothing.
    min_num = max_num = 1
    autocomplete_fields = ("campaigns", "pools")
    verbose_name = verbose_name_plural = _("What this key may do")


def _api_key_names_translated() -> None:
    """rest_framework_api_key names its model, its fields and its list's columns in English only
    (some without gettext at all): give them the product's words, in the reader's language."""
    meta = APIKey._meta
    meta.verbose_name, meta.verbose_name_plural = _("API key"), _("API keys")
    meta.app_config.verbose_name = _("API keys")
    for name, label, help_text in (
        ("name", _("name"), _("What the key is for, e.g. the CRM that sends the mailings.")),
        ("prefix", _("prefix"), ""),
        ("created", _("created"), ""),
        ("expiry_date", _("expires"), _("After this moment the key is refused.")),
        ("revoked", _("revoked"), _("A revoked key is refused for good (this cannot be undone).")),
    ):
        field = meta.get_field(name)
        field.verbose_name = label
        if help_text:
            field.help_text = help_text
    APIKey._has_expired.short_description = _("has expired")


_api_key_names_translated()
admin.site.unregister(APIKey)


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    inlines = [ApiKeyScopeInline]
    list_display = (*APIKeyModelAdmin.list_display, "operations", "reach")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("scope")
            .prefetch_related("scope__campaigns", "scope__pools")
        )

    @admin.display(description=_("May call"))
    def operations(self, key: APIKey) -> str:
        scope = getattr(key, "scope", None)
        labels = dict(ApiOperation.choices)
        chosen = [labels[op] for op in ApiOperation.values if scope and op in scope.operations]
        return ", ".join(str(label) for label in chosen) or gettext("nothing")

    @admin.display(description=_("Pools"))
    def reach(self, key: APIKey) -> str:
        scope = getattr(key, "scope", None)
        if scope is None:
            return gettext("none")
        if scope.every_pool:
            return EVERY_POOL
        named = [*(str(c) for c in scope.campaigns.all()), *(p.slug for p in scope.pools.all())]
        return ", ".join(named) or gettext("none")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The pools a scope reaches are saved after the scope itself.
        key_rights_forget(form.instance.prefix)
