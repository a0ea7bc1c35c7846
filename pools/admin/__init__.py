"""The pools admin, one module per screen family (as django.contrib.admin is laid out).

Importing the package registers every ModelAdmin and the home page's sections. The names other
apps, tests and benchmarks import from `pools.admin` are re-exported here.
"""

from . import api_keys, home  # noqa: F401  (register the API keys' admin, the home page's sections)
from .campaigns import CampaignAdmin, PoolInline
from .codes import (
    MARKED_ISSUED,
    BoundedCountPaginator,
    CodeAdmin,
    PoolListFilter,
    StatusListFilter,
    code_story,
)
from .parts import (
    WITHDRAW_LIST_QUEUED,
    WITHDRAW_QUEUED,
    WITHDRAWN_DONE,
    AdminMedia,
    PageParts,
    ReadOnlyInline,
    addition_label,
    addition_labels,
    campaign_page,
    can_export,
    counts_line,
    home_page,
    low_stock_badge,
    pool_page,
    status_badge,
)
from .pool_actions import (
    ENDED,
    ENDED_STOPPED,
    LAUNCH_NOTHING_SELECTED,
    LAUNCH_REFUSED,
    LAUNCH_SUCCESS,
    LAUNCHED_EMPTY,
    PAUSED,
    RESUMED,
    WITHDRAW_NOTHING,
)
from .pools import SAVE_TO_ADD_CODES, PoolAdmin
from .reports import CodeExportAdmin, ReportAdmin, WithdrawalAdmin

__all__ = [
    "ENDED",
    "ENDED_STOPPED",
    "LAUNCH_NOTHING_SELECTED",
    "LAUNCH_REFUSED",
    "LAUNCH_SUCCESS",
    "LAUNCHED_EMPTY",
    "MARKED_ISSUED",
    "PAUSED",
    "RESUMED",
    "SAVE_TO_ADD_CODES",
    "WITHDRAW_NOTHING",
    "WITHDRAW_LIST_QUEUED",
    "WITHDRAW_QUEUED",
    "WITHDRAWN_DONE",
    "AdminMedia",
    "BoundedCountPaginator",
    "CampaignAdmin",
    "CodeAdmin",
    "CodeExportAdmin",
    "PageParts",
    "PoolAdmin",
    "PoolInline",
    "PoolListFilter",
    "ReadOnlyInline",
    "ReportAdmin",
    "StatusListFilter",
    "WithdrawalAdmin",
    "addition_label",
    "addition_labels",
    "campaign_page",
    "can_export",
    "code_story",
    "counts_line",
    "home_page",
    "low_stock_badge",
    "pool_page",
    "status_badge",
]
