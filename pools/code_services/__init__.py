"""What happens to single codes, one module per operation: issuing (single, batches, release),
redemption (check, redeem, mark as issued), the expiry sweep, withdrawals, and the additions of
codes with their undo.

Every rule of issuing and redemption is enforced here (or in Code.redeem_refusal, which these
ask), for the admin, the shell and the HTTP API alike. Refusals raise CodeRefused with a stable
reason (refusals.py). The public names are gathered here, so that callers import them from
`pools.code_services` whichever module holds them.
"""

from .additions import (
    UndoOutcome,
    addition_undo_run,
    addition_undo_start,
    code_addition_counts,
    code_addition_create,
    code_addition_record,
    code_addition_undo,
    code_addition_undo_preview,
)
from .batches import (
    BATCH_EMPTY,
    BATCH_MAX,
    BATCH_TOO_LARGE,
    BatchOutcome,
    IssuedCode,
    api_key_namespace,
    batch_key,
    code_issue_batch,
    codes_issue_many,
)
from .claims import ISSUABLE_NOW, codes_claim, issue_room
from .holdings import Holdings, codes_held, customer_holdings
from .issuing import code_issue, code_release, keys_held, pool_fallback
from .loading import BatchResult, load_batch
from .lookups import CUSTOMER_REQUIRED, customer_clean
from .redemption import code_check, code_mark_issued, code_redeem
from .sweeps import EXPIRY_SLICE, codes_expire
from .withdrawals import (
    LIST_EMPTY,
    LIST_NOT_TEXT,
    NEEDS_NEW_FILE,
    NOT_FOUND_SAMPLE,
    NOTHING_TO_WITHDRAW,
    WITHDRAW_AT_ONCE,
    CodeListNotText,
    code_list_parse,
    code_list_read,
    code_list_sniff,
    codes_withdraw,
    withdrawal_file_start,
    withdrawal_rerun,
    withdrawal_run,
)

__all__ = [
    "BATCH_EMPTY",
    "BATCH_MAX",
    "BATCH_TOO_LARGE",
    "CUSTOMER_REQUIRED",
    "EXPIRY_SLICE",
    "ISSUABLE_NOW",
    "LIST_EMPTY",
    "LIST_NOT_TEXT",
    "NEEDS_NEW_FILE",
    "NOTHING_TO_WITHDRAW",
    "NOT_FOUND_SAMPLE",
    "WITHDRAW_AT_ONCE",
    "BatchOutcome",
    "BatchResult",
    "CodeListNotText",
    "Holdings",
    "IssuedCode",
    "UndoOutcome",
    "addition_undo_run",
    "addition_undo_start",
    "api_key_namespace",
    "batch_key",
    "code_addition_counts",
    "code_addition_create",
    "code_addition_record",
    "code_addition_undo",
    "code_addition_undo_preview",
    "code_check",
    "code_issue",
    "code_issue_batch",
    "code_list_parse",
    "code_list_read",
    "code_list_sniff",
    "code_mark_issued",
    "code_redeem",
    "code_release",
    "codes_claim",
    "codes_expire",
    "codes_held",
    "codes_issue_many",
    "codes_withdraw",
    "customer_clean",
    "load_batch",
    "customer_holdings",
    "issue_room",
    "keys_held",
    "pool_fallback",
    "withdrawal_file_start",
    "withdrawal_rerun",
    "withdrawal_run",
]
