"""Who may reach every named route: the table tests/test_route_access.py checks, route by route.

One entry per route name (`namespace:name` as `reverse()` spells it). A route added without an
entry fails the suite, naming the route; an entry whose route is gone fails it too.

The rule each entry is checked against (docs/security.md V8, V16):

- Anonymous visitors: pages redirect (302) to /accounts/login/; the API answers 401.
- Signed-in users who may not see a page or an object get 404: a role-gated page, the audit log
  and another team's request or release do not exist for them.
- Signed-in users who may see the page or object but may not act on it get 403, whatever they
  send: who is asking is checked before the input is validated and before the object's state.
- A refused request changes nothing and leaves one `denied` audit row (audit.middleware).

Personas (conftest.py): alice and bob (scientists, Cardiology; alice files the requests),
charlie (scientist, Oncology: the other team), olivia (privacy officer), sam (data steward),
ada (admin), audrey (auditor).

`outliers` maps a check ("anonymous", "get", "write", "other_team") to what a route answers
where it breaks the rule: a strict xfail, so fixing the view fails it and the mark comes out
here. None is left (issue 10 fixed the last ones); a new route is expected to follow the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PERSONAS = ("alice", "bob", "charlie", "olivia", "sam", "ada", "audrey")

EVERYONE = frozenset(PERSONAS)
NOBODY: frozenset[str] = frozenset()
SCIENTISTS = frozenset({"alice", "bob", "charlie"})
STEWARDS = frozenset({"sam", "ada"})  # core.roles.MANAGES_DATASETS
REVIEWERS = frozenset({"olivia", "sam"})  # core.roles.REVIEWS_REQUESTS
AUDIT_READERS = frozenset({"olivia", "ada", "audrey"})  # core.roles.AUDIT_READERS
ADMINS = frozenset({"ada"})
# alice's request, visible to her team and to the roles that see every request (not charlie).
REQUEST_VIEWERS = frozenset({"alice", "bob", "olivia", "sam", "ada", "audrey"})
# alice's internal (Cardiology) release: her team and the oversight roles (not charlie, not the
# steward, not the admin, who sees only what their own team may see).
RELEASE_VIEWERS = frozenset({"alice", "bob", "olivia", "audrey"})
# Members who can find the release's card but not use it, so may ask for access (catalog.access).
ACCESS_ASKERS = frozenset({"charlie", "sam", "ada"})
# charlie's access request: its requester and oversight (core.roles.SEES_EVERY_RELEASE) see it.
ACCESS_REQUEST_VIEWERS = frozenset({"charlie", "olivia", "audrey"})
OFFICERS = frozenset({"olivia"})


@dataclass(frozen=True)
class Route:
    """What one route lets each persona do.

    kind:    "page" (HTML behind sign-in), "api" (DRF), "public" (no sign-in)
    sees:    personas who may GET it, or, for an action, see the object or page it acts on
    acts:    personas who may use `write` on it (None: the route takes no write)
    get:     False for actions that only take `write` (GET is not checked beyond anonymous)
    ok:      what a persona in `sees` gets on GET
    write:   the write method ("post", "put", "patch")
    multipart: send the write as multipart (file uploads) instead of JSON
    objects: URL keyword -> world object (default by keyword: request_id -> the in-review request)
    team_scoped: the URL names an object of alice's team: charlie (another team) must get 404
    anonymous: for "public" routes, (method, status) an anonymous visitor gets
    refused: status for a persona outside `acts` who is in `sees` (outside `sees`: 404)
    confirms: the GET is the confirmation form of the write: personas in `sees` but not in `acts`
             get `refused` on GET too (the form of an action they may not take)
    """

    kind: str
    sees: frozenset[str] = NOBODY
    acts: frozenset[str] | None = None
    get: bool = True
    ok: int = 200
    write: str = "post"
    multipart: bool = False
    objects: dict[str, str] = field(default_factory=dict)
    team_scoped: bool = False
    anonymous: tuple[str, int] = ("get", 200)
    refused: int = 403
    confirms: bool = False
    outliers: dict[str, str] = field(default_factory=dict)

    def expected_get(self, persona: str) -> int:
        if persona not in self.sees:
            return 404
        if self.confirms and persona not in (self.acts or NOBODY):
            return self.refused
        return self.ok

    def expected_refusal(self, persona: str) -> int:
        return self.refused if persona in self.sees else 404


def page(sees: frozenset[str], **kw: object) -> Route:
    return Route(kind="page", sees=sees, **kw)  # type: ignore[arg-type]


def action(sees: frozenset[str], acts: frozenset[str], **kw: object) -> Route:
    """A POST-only HTML action on something `sees` can see."""
    return Route(kind="page", sees=sees, acts=acts, get=False, **kw)  # type: ignore[arg-type]


def api(sees: frozenset[str], **kw: object) -> Route:
    return Route(kind="api", sees=sees, **kw)  # type: ignore[arg-type]


def api_action(sees: frozenset[str], acts: frozenset[str], **kw: object) -> Route:
    return Route(kind="api", sees=sees, acts=acts, get=False, **kw)  # type: ignore[arg-type]


def public(method: str = "get", status: int = 200) -> Route:
    return Route(kind="public", anonymous=(method, status))


# Django's admin (mounted outside production only) is one entry for its whole namespace: staff with
# a verified second factor only, so anonymous visitors and portal users are sent to its sign-in.
ADMIN_NAMESPACE = "admin"

ROUTES: dict[str, Route] = {
    # --- Portal: sign-in, account, health -------------------------------------------------------
    "dashboard": page(EVERYONE),
    "healthz": public(),
    "login": public(),
    "logout": action(EVERYONE, EVERYONE),
    "mfa-setup": page(EVERYONE, acts=EVERYONE),
    # Without an authenticator the second-factor check sends everyone to set one up first.
    "mfa-verify": page(EVERYONE, acts=EVERYONE, ok=302),
    "account": page(EVERYONE),
    "account-tokens": page(EVERYONE, acts=EVERYONE),
    # alice's token: its owner may revoke it; to anyone else it does not exist.
    "account-token-revoke": action(frozenset({"alice"}), frozenset({"alice"})),
    "password_change": page(EVERYONE, acts=EVERYONE),
    "password_change_done": page(EVERYONE),
    "password_reset": public(),
    "password_reset_done": public(),
    "password_reset_confirm": public(),
    "password_reset_complete": public(),
    # --- Portal: management (admins; policy for its readers) -------------------------------------
    "portal:user-list": page(ADMINS),
    "portal:user-create": page(ADMINS, acts=ADMINS),
    "portal:user-edit": page(ADMINS, acts=ADMINS, objects={"pk": "bob"}),
    "portal:user-reset": action(ADMINS, ADMINS, objects={"pk": "bob"}),
    "portal:team-list": page(ADMINS, acts=ADMINS),
    "portal:change-list": page(ADMINS),
    # The pending change was proposed by ada: a second admin must decide it, never its proposer.
    "portal:change-decide": action(ADMINS, NOBODY, objects={"pk": "change"}),
    "portal:policy": page(AUDIT_READERS, acts=frozenset({"olivia", "ada"})),
    "portal:policy-version": page(AUDIT_READERS),
    "portal:policy-proposal": page(AUDIT_READERS, objects={"pk": "proposal"}),
    # The open proposal was written by ada; only another privacy officer approves or rejects it.
    "portal:policy-proposal-decide": action(AUDIT_READERS, frozenset({"olivia"}), objects={"pk": "proposal"}),
    # --- Source datasets ---------------------------------------------------------------------------
    "generation:dataset-list": page(EVERYONE),
    "generation:dataset-upload": page(STEWARDS, acts=STEWARDS),
    "generation:dataset-detail": page(EVERYONE),
    "generation:dataset-review": page(STEWARDS, acts=STEWARDS),
    # A form of the review page, which does not exist for other roles.
    "generation:dataset-estimate": action(STEWARDS, STEWARDS),
    "generation:dataset-budget": page(EVERYONE),
    "generation:dataset-signoff": action(EVERYONE, STEWARDS),
    # --- Generation requests -------------------------------------------------------------------------
    "approvals:request-list": page(EVERYONE),
    "approvals:request-new": page(SCIENTISTS, acts=SCIENTISTS),
    "approvals:request-preview": action(SCIENTISTS, SCIENTISTS),
    "approvals:review-queue": page(REVIEWERS),
    "approvals:review-evidence": page(AUDIT_READERS),
    "approvals:check-glossary": page(EVERYONE),
    "approvals:request-detail": page(REQUEST_VIEWERS, team_scoped=True),
    # alice's draft: only its requester edits it (tests/test_pages_access.py: bob and olivia 404).
    "approvals:request-edit": page(
        frozenset({"alice"}), acts=frozenset({"alice"}), objects={"request_id": "draft"}, team_scoped=True
    ),
    "approvals:request-job": page(REQUEST_VIEWERS, team_scoped=True),
    "approvals:request-submit": action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "approvals:request-cancel": action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "approvals:request-decide": action(REQUEST_VIEWERS, REVIEWERS, team_scoped=True),
    # The requester or a privacy officer may synthesize again (approvals/services/attempts.py).
    "approvals:request-regenerate": action(REQUEST_VIEWERS, frozenset({"alice", "olivia"}), team_scoped=True),
    "approvals:request-upload": action(
        REQUEST_VIEWERS, frozenset({"alice"}), multipart=True, team_scoped=True
    ),
    "approvals:request-retry-ask": action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "approvals:request-retry-decide": action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    # --- Catalog -------------------------------------------------------------------------------------
    "catalog:release-list": page(EVERYONE),
    # The validation report of the published request's job: whoever sees the request.
    "catalog:job-report": page(REQUEST_VIEWERS, team_scoped=True),
    "catalog:gate-override-propose": action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    "catalog:gate-override-decide": action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    "catalog:bakeoff-choose": action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "catalog:release-detail": page(RELEASE_VIEWERS, team_scoped=True),
    "catalog:release-lineage": page(RELEASE_VIEWERS, team_scoped=True),
    # Oversight's dashboard: the audit readers' page, which does not exist for other roles.
    "catalog:governance": page(AUDIT_READERS),
    "catalog:release-download": page(RELEASE_VIEWERS, team_scoped=True),
    # Privacy officers withdraw and renew; the withdrawal's confirmation form is theirs alone.
    "catalog:release-withdraw": page(RELEASE_VIEWERS, acts=OFFICERS, confirms=True, team_scoped=True),
    "catalog:release-renew": action(RELEASE_VIEWERS, OFFICERS, team_scoped=True),
    # Anyone who finds the card may open the form; those who already have access are told so (a
    # state refusal: a message and back, audited), not refused.
    "catalog:access-request-create": page(EVERYONE, acts=ACCESS_ASKERS, refused=302),
    "catalog:access-request-list": page(EVERYONE),
    # Withdrawing a source dataset's releases: a privacy officer's form and action on a dataset
    # everyone may see (generation:dataset-detail).
    "catalog:dataset-withdraw": page(EVERYONE, acts=OFFICERS, confirms=True),
    "catalog:access-request-decide": action(
        ACCESS_REQUEST_VIEWERS, OFFICERS, objects={"access_request_id": "access"}
    ),
    "catalog:access-request-revoke": action(
        ACCESS_REQUEST_VIEWERS, OFFICERS, objects={"access_request_id": "access"}
    ),
    "catalog:release-report-export": page(RELEASE_VIEWERS, team_scoped=True),
    # --- Federated studies (federation/): alice's study over sites whose steward is sam ---------------
    "federation:study-list": page(EVERYONE),
    "federation:study-new": page(SCIENTISTS, acts=SCIENTISTS),
    "federation:study-detail": page(REQUEST_VIEWERS, team_scoped=True, objects={"study_id": "study"}),
    "federation:study-progress": page(REQUEST_VIEWERS, team_scoped=True, objects={"study_id": "study"}),
    "federation:study-submit": action(
        REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True, objects={"study_id": "study"}
    ),
    # A privacy officer and the participating sites' stewards decide; never the requester.
    "federation:study-decide": action(
        REQUEST_VIEWERS, REVIEWERS, team_scoped=True, objects={"study_id": "study"}
    ),
    "federation:study-cancel": action(
        REQUEST_VIEWERS, frozenset({"alice", "olivia"}), team_scoped=True, objects={"study_id": "study"}
    ),
    # --- Notifications: each member's own inbox --------------------------------------------------
    "notifications:inbox": page(EVERYONE),
    "notifications:mark-read": action(EVERYONE, EVERYONE),
    # --- Audit ---------------------------------------------------------------------------------------
    "audit:event-list": page(AUDIT_READERS),
    # GET shows the recorded verdict; POST ("Verify now") runs a verification, audited.
    "audit:verify": page(AUDIT_READERS, acts=AUDIT_READERS),
    "audit:export-csv": page(AUDIT_READERS),
    # --- API ---------------------------------------------------------------------------------------
    "api-token": public("post", 400),
    "api-schema": public(),
    "api-docs": public(),
    "api-dataset-list": api(EVERYONE, acts=STEWARDS, multipart=True),
    "api-dataset-detail": api(EVERYONE),
    "api-dataset-columns": api_action(EVERYONE, STEWARDS, write="patch"),
    "api-dataset-column-estimate": api_action(EVERYONE, STEWARDS),
    "api-dataset-budget": api(EVERYONE),
    # Every ledger entry, paginated: custodians (generation.policies.CUSTODIANS) only.
    "api-dataset-ledger": api(frozenset({"olivia", "sam", "ada", "audrey"})),
    "api-dataset-signoff": api_action(EVERYONE, STEWARDS),
    "api-dataset-withdraw-releases": api_action(EVERYONE, OFFICERS),
    "api-request-gate-override-approve": api_action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    "api-request-choose": api_action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "api-request-list": api(EVERYONE, acts=SCIENTISTS),
    "api-request-preview": api_action(EVERYONE, SCIENTISTS),
    "api-request-detail": api(REQUEST_VIEWERS, acts=frozenset({"alice"}), write="put", team_scoped=True),
    "api-request-submit": api_action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "api-request-cancel": api_action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "api-request-decisions": api_action(REQUEST_VIEWERS, REVIEWERS, team_scoped=True),
    "api-request-attempts": api(REQUEST_VIEWERS, team_scoped=True),
    "api-request-regenerate": api_action(REQUEST_VIEWERS, frozenset({"alice", "olivia"}), team_scoped=True),
    "api-request-retry": api_action(REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True),
    "api-request-retry-decisions": api_action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    "api-request-upload": api_action(
        REQUEST_VIEWERS,
        frozenset({"alice"}),
        multipart=True,
        team_scoped=True,
    ),
    "api-request-gate-override": api_action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    "api-request-gate-override-decline": api_action(REQUEST_VIEWERS, frozenset({"olivia"}), team_scoped=True),
    # A request's evidence package (a zip): oversight only (core.roles.EXPORTS_EVIDENCE).
    "api-request-evidence": api(frozenset({"olivia", "audrey"}), team_scoped=True),
    "api-release-list": api(EVERYONE),
    "api-release-detail": api(RELEASE_VIEWERS, team_scoped=True),
    "api-release-card": api(RELEASE_VIEWERS, team_scoped=True),
    "api-release-lineage": api(RELEASE_VIEWERS, team_scoped=True),
    "api-release-download": api(RELEASE_VIEWERS, team_scoped=True),
    "api-release-report": api(RELEASE_VIEWERS, team_scoped=True),
    "api-release-renew": api_action(RELEASE_VIEWERS, OFFICERS, team_scoped=True),
    "api-release-withdraw": api_action(RELEASE_VIEWERS, OFFICERS, team_scoped=True),
    "api-release-access-request-create": api_action(EVERYONE, ACCESS_ASKERS, refused=409),
    "api-access-request-list": api(EVERYONE),
    "api-access-request-detail": api(ACCESS_REQUEST_VIEWERS, objects={"access_request_id": "access"}),
    "api-access-request-decide": api_action(
        ACCESS_REQUEST_VIEWERS, OFFICERS, objects={"access_request_id": "access"}
    ),
    "api-access-request-revoke": api_action(
        ACCESS_REQUEST_VIEWERS, OFFICERS, objects={"access_request_id": "access"}
    ),
    "api-study-list": api(EVERYONE, acts=SCIENTISTS),
    "api-study-detail": api(REQUEST_VIEWERS, team_scoped=True, objects={"study_id": "study"}),
    "api-study-submit": api_action(
        REQUEST_VIEWERS, frozenset({"alice"}), team_scoped=True, objects={"study_id": "study"}
    ),
    "api-study-decisions": api_action(
        REQUEST_VIEWERS, REVIEWERS, team_scoped=True, objects={"study_id": "study"}
    ),
    "api-study-cancel": api_action(
        REQUEST_VIEWERS, frozenset({"alice", "olivia"}), team_scoped=True, objects={"study_id": "study"}
    ),
    "api-study-evidence": api(
        frozenset({"olivia", "audrey"}), team_scoped=True, objects={"study_id": "study"}
    ),
    "notifications-list": api(EVERYONE),
    "notifications-read": api_action(EVERYONE, EVERYONE),
    # The log does not exist for other roles: 404 as on the audit pages (audit/api/views.py).
    "audit-event-list": api(AUDIT_READERS),
    "audit-verify": api(AUDIT_READERS, acts=AUDIT_READERS),
}
