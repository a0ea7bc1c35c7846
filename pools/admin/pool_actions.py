"""What staff do to a pool from its page and the pools list: launch it, pause, resume or end
it, withdraw codes of it; each after a confirmation page. PoolAdmin mixes these views in."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..code_services import code_list_parse, codes_withdraw, withdrawal_file_start
from ..forms import EndForm, ReasonForm, WithdrawListForm
from ..models import Pool
from ..selectors import launch_summary, pools_with_counts
from ..services import pool_end, pool_launch, pool_pause, pool_resume
from .codes import WITHDRAW_INTRO
from .parts import number, tell_withdrawal

LAUNCH_SUCCESS = _("The pool “%(pool)s” is launched and active.")
LAUNCH_REFUSED = _("The pool “%(pool)s” was not launched: %(reason)s")
LAUNCHED_EMPTY = _("It has no codes yet: add some before it is used.")
LAUNCH_NOTHING_SELECTED = _("Select at least one draft pool to launch.")
PAUSED = _("The pool “%(pool)s” is paused: it issues and redeems no codes until it is resumed.")
RESUMED = _("The pool “%(pool)s” is active again.")
ENDED = _(
    "The pool “%(pool)s” has ended: it issues no more codes. Codes it issued can be redeemed "
    "until their Available-till."
)
ENDED_STOPPED = _("The pool “%(pool)s” has ended; its codes can no longer be redeemed.")
WITHDRAW_NOTHING = _("Paste or upload at least one code.")
LAUNCH_INTRO = _("Launching makes a pool active: it issues and redeems codes from now on.")


class PoolActionsMixin:
    """The pool's actions, mixed into PoolAdmin (a ModelAdmin) before admin.ModelAdmin."""

    # Launch: a button on the pool's page (it saves the form first) and an action on the list.

    def has_launch_permission(self, request, obj=None):
        return request.user.has_perm("pools.launch_pool")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        launching = request.method == "POST" and "_launch" in request.POST
        if launching and not self.has_launch_permission(request):
            raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _render_with_launch(self, request, context, add, change, form_url, obj):
        context["show_launch"] = (
            not (obj and obj.is_launched)
            and self.has_launch_permission(request, obj)
            and (self.has_add_permission(request) if add else self.has_change_permission(request))
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_add(self, request, obj, post_url_continue=None):
        if "_launch" in request.POST:
            return self._launch_and_redirect(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if "_launch" in request.POST:
            return self._launch_and_redirect(request, obj)
        return super().response_change(request, obj)

    def _launch_and_redirect(self, request, pool):
        if pool.launch_blockers():
            # Refused at once, on the pool's page, where the missing field is.
            self._launch(request, pool)
            return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))
        # Saved; launching asks first.
        return HttpResponseRedirect(f"{reverse('admin:pools_pool_launch')}?ids={pool.pk}")

    def launch_confirm_view(self, request):
        """Sum up what launching the given pools means and warn of likely mistakes; launch
        them once confirmed."""
        if not (self.has_launch_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        ids = [
            int(i)
            for i in request.POST.get("ids", request.GET.get("ids", "")).split(",")
            if i.strip().isdigit()
        ]
        pools = list(pools_with_counts(Pool.objects.filter(pk__in=ids, status=Pool.Status.DRAFT)))
        if not pools:
            messages.error(request, LAUNCH_NOTHING_SELECTED)
            return HttpResponseRedirect(reverse("admin:pools_pool_changelist"))
        if request.method == "POST" and "confirm" in request.POST:
            for pool in pools:
                self._launch(request, pool)
            if len(pools) == 1:
                return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pools[0].pk]))
            return HttpResponseRedirect(reverse("admin:pools_pool_changelist"))
        sections = []
        for pool in pools:
            summary = launch_summary(pool)
            sections.append(
                {
                    "heading": f"{pool.slug} ({pool.campaign})",
                    "facts": summary["facts"],
                    "warnings": [
                        LAUNCH_REFUSED % {"pool": pool, "reason": reason}
                        for reason in summary["blockers"].values()
                    ]
                    + summary["warnings"],
                }
            )
        single = len(pools) == 1
        return self._confirm_page(
            request,
            title=gettext("Launch %(pool)s?") % {"pool": pools[0].slug}
            if single
            else ngettext("Launch %(count)s pool?", "Launch %(count)s pools?", len(pools))
            % {"count": number(len(pools))},
            intro=[LAUNCH_INTRO],
            sections=sections,
            hidden=[("ids", ",".join(str(p.pk) for p in pools))],
            confirm_label=gettext("Launch")
            if single
            else ngettext("Launch %(count)s pool", "Launch %(count)s pools", len(pools))
            % {"count": number(len(pools))},
            cancel_url=reverse("admin:pools_pool_change", args=[pools[0].pk])
            if single
            else reverse("admin:pools_pool_changelist"),
            crumbs=[self._crumb(pools[0])] if single else [],
        )

    def _crumb(self, pool):
        return {"url": reverse("admin:pools_pool_change", args=[pool.pk]), "label": pool.slug}

    def _confirm_page(self, request, **context):
        context.setdefault("can_confirm", True)
        return TemplateResponse(
            request,
            "admin/pools/confirm.html",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    # Pause, resume, end: each a confirmation page with an optional reason.

    STATUS_ACTIONS = {
        "pause": {
            "service": pool_pause,
            "permission": "pause_pool",
            "from": (Pool.Status.ACTIVE,),
            "button": _("Pause"),
            "form": ReasonForm,
            "title": _("Pause %(pool)s?"),
            "intro": _(
                "While paused, the pool refuses to issue, mark and redeem codes (reason "
                "pool_paused), and sends no low-stock alerts, until it is resumed."
            ),
            "done": PAUSED,
        },
        "resume": {
            "service": pool_resume,
            "permission": "pause_pool",
            "from": (Pool.Status.PAUSED,),
            "button": _("Resume"),
            "form": ReasonForm,
            "title": _("Resume %(pool)s?"),
            "intro": _("The pool becomes active again: it issues and redeems codes."),
            "done": RESUMED,
        },
        "end": {
            "service": pool_end,
            "permission": "end_pool",
            "from": (Pool.Status.ACTIVE, Pool.Status.PAUSED),
            "button": _("End"),
            "form": EndForm,
            "title": _("End %(pool)s?"),
            "intro": _("Ending is final: the pool issues no more codes and cannot be resumed."),
            "done": ENDED,
            "dangerous": True,
        },
    }

    def _may(self, request, codename) -> bool:
        return request.user.has_perm(f"pools.{codename}")

    def status_change_view(self, request, object_id, action):
        """Pause, resume or end the pool, after a confirmation with an optional reason."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404
        spec = self.STATUS_ACTIONS[action]
        if not self._may(request, spec["permission"]):
            raise PermissionDenied
        form = spec["form"](request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                event = spec["service"](pool=pool, user=request.user, **form.cleaned_data)
            except ValidationError as error:
                for reason in error.messages:
                    messages.error(request, reason)
            else:
                done = ENDED_STOPPED if pool.redemptions_stopped else spec["done"]
                message = done % {"pool": pool}
                if event.reason:
                    message = gettext("%(message)s Reason: %(reason)s") % {
                        "message": message,
                        "reason": event.reason,
                    }
                self.log_change(request, pool, message)
                messages.success(request, message)
            return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))
        return self._confirm_page(
            request,
            title=spec["title"] % {"pool": pool},
            intro=[spec["intro"]],
            form=form,
            confirm_label=spec["button"],
            dangerous=spec.get("dangerous", False),
            can_confirm=pool.status in spec["from"],
            cancel_url=reverse("admin:pools_pool_change", args=[pool.pk]),
            crumbs=[self._crumb(pool)],
        )

    def withdraw_view(self, request, object_id):
        """Withdraw a pasted or uploaded list of codes of the pool (leaked ones, say)."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404
        if not self._may(request, "withdraw_code"):
            raise PermissionDenied
        form = WithdrawListForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if request.method == "POST" and form.is_valid():
            file = form.cleaned_data["file"]
            # A pasted list is parsed here: the request holds it already, as a form field within
            # DATA_UPLOAD_MAX_MEMORY_SIZE, and a few codes are then withdrawn at once. A file is
            # stored and read by the worker, the pasted codes before its own.
            codes = code_list_parse(form.cleaned_data["codes"])
            if not codes and not file:
                form.add_error("codes", WITHDRAW_NOTHING)
                return self._withdraw_page(request, pool, form)
            options = {"pool": pool, "user": request.user, "reason": form.cleaned_data["reason"]}
            try:
                if file:
                    withdrawal = withdrawal_file_start(file=file, codes=codes, **options)
                else:
                    withdrawal = codes_withdraw(codes=codes, **options)
            except ValidationError as error:
                form.add_error("file" if file else "codes", error)
                return self._withdraw_page(request, pool, form)
            tell_withdrawal(request, withdrawal)
            if file:
                logged = gettext("Withdrawal #%(number)s of the list “%(file)s”.") % {
                    "number": withdrawal.pk,
                    "file": withdrawal.list_file_name,
                }
            else:
                logged = ngettext(
                    "Withdrawal #%(number)s of %(count)s code.",
                    "Withdrawal #%(number)s of %(count)s codes.",
                    len(codes),
                ) % {"number": withdrawal.pk, "count": number(len(codes))}
            self.log_change(request, pool, logged)
            return HttpResponseRedirect(
                reverse("admin:pools_withdrawal_change", args=[withdrawal.pk])
            )
        return self._withdraw_page(request, pool, form)

    def _withdraw_page(self, request, pool, form):
        return self._confirm_page(
            request,
            title=gettext("Withdraw codes of %(pool)s") % {"pool": pool},
            intro=[WITHDRAW_INTRO],
            form=form,
            multipart=True,
            confirm_label=gettext("Withdraw"),
            dangerous=True,
            cancel_url=reverse("admin:pools_pool_change", args=[pool.pk]),
            crumbs=[self._crumb(pool)],
        )

    def _launch(self, request, pool) -> bool:
        try:
            pool_launch(pool=pool, user=request.user)
        except ValidationError as error:
            for reason in error.messages:
                messages.error(request, LAUNCH_REFUSED % {"pool": pool, "reason": reason})
            return False
        self.log_change(request, pool, gettext("Launched the pool."))
        message = LAUNCH_SUCCESS % {"pool": pool}
        if not pool.codes.exists():
            message = f"{message} {LAUNCHED_EMPTY}"
        messages.success(request, message)
        return True

    @admin.action(description=_("Launch selected pools"), permissions=["launch"])
    def launch_selected(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:pools_pool_launch')}?ids={ids}")
