from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from .models import Campaign, Pool
from .services import pool_names_automatic, pool_slug_suggestion, template_parameter_from_slug
from .uploads import UploadField

POOL_ID_INVALID = _(
    "Use letters, digits, hyphens and underscores only in the pool ID (for example spring-sale)."
)
pool_id_validator = RegexValidator(r"^[-a-zA-Z0-9_]+\Z", POOL_ID_INVALID, code="invalid")


class PoolAdminForm(forms.ModelForm):
    class Meta:
        model = Pool
        fields = [
            "campaign",
            "description",
            "slug",
            "template_parameter",
            "require_issue_before_redeem",
            "issued_validity_days",
            "processing",
            "allow_multiple_use",
            "notify_below_enabled",
            "notify_below",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left blank, they are filled in on save (see pool_save); the placeholder shows the value.
        for name in ("slug", "template_parameter"):
            if name in self.fields:
                self.fields[name].required = False
        if "slug" in self.fields:
            # The product's words instead of Django's 'Enter a valid “slug”'.
            self.fields["slug"].validators = [pool_id_validator]
        pool = self.instance
        if pool.pk and not pool.is_launched:
            # Filled in on save: they go on following the description (static/pools/pool_form.js).
            for name in pool_names_automatic(pool) & set(self.fields):
                self.fields[name].widget.attrs["data-automatic"] = ""
        campaign_id = self.initial.get("campaign") or self.instance.campaign_id
        if "fallback_pool" in self.fields:
            self.fields["fallback_pool"].queryset = fallback_choices(pool, campaign_id)
        if "slug" in self.fields and campaign_id and not self.instance.slug:
            campaign = Campaign.objects.filter(pk=campaign_id).first()
            if campaign:
                slug = pool_slug_suggestion(campaign=campaign)
                self.fields["slug"].widget.attrs["placeholder"] = slug
                self.fields["template_parameter"].widget.attrs["placeholder"] = (
                    template_parameter_from_slug(slug)
                )


def fallback_choices(pool: Pool, campaign_id):
    """Return the pools the form offers as `pool`'s fallback: of its campaign, not itself, not
    ended (saving refuses the first two; an ended pool issues nothing). The current fallback
    stays offered, so that a pool whose fallback has since ended can still be saved."""
    choices = Pool.objects.exclude(status=Pool.Status.ENDED)
    if campaign_id:
        choices = choices.filter(campaign_id=campaign_id)
    if pool.pk:
        choices = choices.exclude(pk=pool.pk)
    if pool.fallback_pool_id:
        choices = choices | Pool.objects.filter(pk=pool.fallback_pool_id)
    return choices.order_by("slug")


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("Optional; shown in the pool's history."),
    )


class EndForm(ReasonForm):
    stop_redemptions = forms.BooleanField(
        label=_("Stop redemptions too"),
        required=False,
        help_text=_(
            "Codes already issued can then no longer be redeemed either. Without it they can be "
            "redeemed until their Available-till."
        ),
    )


class WithdrawListForm(ReasonForm):
    codes = forms.CharField(
        label=_("Codes to withdraw"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
        help_text=_("One per line, or separated by spaces, commas or semicolons."),
    )
    # Stored and read by the worker (code_services.withdrawal_file_start), which keeps the codes
    # on the withdrawal's row: the limit bounds that row and the worker's memory.
    file = UploadField(
        label=_("Or a file of codes"),
        required=False,
        max_size=lambda: settings.WITHDRAW_MAX_LIST_SIZE,
        help_text=_("A text or CSV file with the codes (the same separators)."),
    )
