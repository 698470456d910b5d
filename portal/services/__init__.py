"""Account administration: users, roles and teams. Every change is audited.

Two people for power (ASVS V8, separation of duties): a change that grants data access or
oversight (a role other than data scientist, any team change, re-activation, creating a user with
such a role or a team, resetting someone's second factor or password) is only *proposed* by one
admin; it is applied when a second, different admin approves it. Changes that only take power
away (demotion to data scientist, deactivation) apply at once, audited. No admin proposes or
decides anything about their own account. `actor=None` is an operator on the host (management
commands): it is trusted and applies directly, as it already holds the database.
"""

from portal.services.accounts import (
    AccountUpdate,
    team_create,
    team_get_or_create,
    user_create,
    user_update,
)
from portal.services.changes import (
    NOT_ADMIN,
    account_change_approve,
    account_change_refusal,
    account_change_reject,
    account_change_withdraw,
    account_change_withdraw_refusal,
    account_changes_decided,
    account_changes_pending,
    account_reset_propose,
    admin_refusal,
    grants_power,
)

__all__ = [
    "NOT_ADMIN",
    "AccountUpdate",
    "account_change_approve",
    "account_change_refusal",
    "account_change_reject",
    "account_change_withdraw",
    "account_change_withdraw_refusal",
    "account_changes_decided",
    "account_changes_pending",
    "account_reset_propose",
    "admin_refusal",
    "grants_power",
    "team_create",
    "team_get_or_create",
    "user_create",
    "user_update",
]
