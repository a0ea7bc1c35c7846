"""The imports admin: the imports screens, the assignments screens, and what imports adds to
pools' pages (parts).

Importing the package registers the ModelAdmins and imports' parts of pools' pages. The names
other apps and tests import from `imports.admin` are re-exported here.
"""

from .assignments import ASSIGNMENT_QUEUED, AssignmentAdmin, released_message
from .imports import (
    CHOOSE_A_POOL,
    IMPORT_QUEUED,
    REJECTED_SHOWN,
    UNDO_STARTED,
    ImportAdmin,
)
from .parts import (
    RECENT_IMPORT_DAYS,
    add_codes_page,
    assign_button,
    import_addition_label,
    imports_attention_section,
    pool_codes_section,
    status_cell,
)

__all__ = [
    "ASSIGNMENT_QUEUED",
    "CHOOSE_A_POOL",
    "IMPORT_QUEUED",
    "RECENT_IMPORT_DAYS",
    "REJECTED_SHOWN",
    "released_message",
    "UNDO_STARTED",
    "AssignmentAdmin",
    "ImportAdmin",
    "add_codes_page",
    "assign_button",
    "import_addition_label",
    "imports_attention_section",
    "pool_codes_section",
    "status_cell",
]
