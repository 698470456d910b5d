"""Create the demo logins and register the demo dataset, for `make run` on a laptop.

Idempotent: users and the dataset that already exist are left as they are (a changed password is
not reset), so it runs on every `make run`. It refuses to run in production, where a shared,
documented password would be a hole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from core.errors import ValidationFailed
from core.roles import NEEDS_SECOND_FACTOR, Role
from generation.choices import DatasetStatus
from generation.models import SourceDataset
from generation.services import dataset_register, dataset_update_columns
from portal.auth_mfa import mfa_enrolled, totp_enrol_with_secret
from portal.models import User
from portal.services import user_create

# One documented password for every demo login; it passes Django's password validators.
DEMO_PASSWORD = "synthgate-demo-2026"
DEMO_EMAIL_DOMAIN = "example.org"
DEMO_USERS: list[tuple[str, str, str]] = [
    ("scientist", Role.DATA_SCIENTIST, "Cardiology"),
    ("officer", Role.PRIVACY_OFFICER, "Privacy"),
    ("officer2", Role.PRIVACY_OFFICER, "Privacy"),
    ("steward", Role.DATA_STEWARD, "Data Office"),
    ("admin", Role.ADMIN, "IT"),
    ("auditor", Role.AUDITOR, "Audit"),
    # One steward per federated demo site (federation.demo): each answers for its own dataset.
    ("steward_north", Role.DATA_STEWARD, "North Hospital"),
    ("steward_lake", Role.DATA_STEWARD, "Lakeside Clinic"),
    ("steward_valley", Role.DATA_STEWARD, "Valley Medical Centre"),
]
SITE_STEWARDS = ("steward_north", "steward_lake", "steward_valley")
# The second factor of the demo logins whose role needs one (every role but the scientist): one
# published secret, like the password (so seed_demo stays refused in production). Add it to an
# authenticator app (FreeOTP, Aegis, Google Authenticator); `make run` prints it.
DEMO_TOTP_SECRET = "SYNTHGATEDEMO234SYNTHGATEDEMO234"
STEWARD = "steward"
DEMO_DATASET_NAME = "flchain (Mayo serum free light chain)"
DEMO_DATASET_FILE = Path(__file__).resolve().parents[2] / "demo" / "flchain.csv"
DEMO_EPSILON_CAP = "3.0"
# The study's outcome. Undeclared, the train-on-synthetic test would predict `mgus` (the first
# sensitive yes/no column, a 1.5% condition), which says little about a release's usefulness.
DEMO_OUTCOME = "death"
# ICD-9 chapter headings as the flchain documentation names them (cause of death; empty for the
# living): the coding scheme's list, not the chapters that happen to occur in this file.
ICD9_CHAPTERS = [
    "Infectious",
    "Neoplasms",
    "Endocrine",
    "Blood",
    "Mental",
    "Nervous",
    "Circulatory",
    "Respiratory",
    "Digestive",
    "Genitourinary",
    "Pregnancy",
    "Skin",
    "Musculoskeletal",
    "Congenital",
    "Perinatal",
    "Ill Defined",
    "Injury and Poisoning",
    "External Causes",
]
# The steward's public declarations, written by hand from the study design and clinical reference
# ranges, never from the file: DP synthesis may use them. Bounds are deliberately wider than any
# value in the data (an adult cohort; free light chains and creatinine up to clearly pathological
# levels; follow-up up to 20 years), so no record's value moves them.
DEMO_DECLARATIONS: list[dict[str, Any]] = [
    {
        "name": "age",
        "kind": "numeric",
        "lower": 18,
        "upper": 110,
        "integer": True,
        "unit": "years",
        "nullable": False,
    },
    {"name": "chapter", "kind": "categorical", "categories": ICD9_CHAPTERS, "nullable": True},
    {"name": "creatinine", "kind": "numeric", "lower": 0, "upper": 15, "unit": "mg/dL", "nullable": True},
    # The free-light-chain group is the decile (1..10) of the summed kappa + lambda, by definition.
    {"name": "flc.grp", "kind": "numeric", "lower": 1, "upper": 10, "integer": True, "nullable": False},
    {"name": "kappa", "kind": "numeric", "lower": 0, "upper": 100, "unit": "mg/L", "nullable": False},
    {"name": "lambda", "kind": "numeric", "lower": 0, "upper": 100, "unit": "mg/L", "nullable": False},
    {"name": "mgus", "kind": "boolean", "categories": ["no", "yes"], "nullable": False},
    {
        "name": "sample.yr",
        "kind": "numeric",
        "lower": 1990,
        "upper": 2010,
        "integer": True,
        "nullable": False,
    },
    {"name": "sex", "kind": "categorical", "categories": ["F", "M"], "nullable": False},
    {"name": "death", "kind": "boolean", "categories": ["0", "1"], "nullable": False},
    {
        "name": "futime",
        "kind": "numeric",
        "lower": 0,
        "upper": 7300,
        "integer": True,
        "unit": "days",
        "nullable": False,
    },
]


class Command(BaseCommand):
    help = "Create one demo login per role and register the demo flchain dataset (not in production)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.IS_PRODUCTION:
            raise CommandError(
                "seed_demo creates logins with a published password and is refused in production "
                "(SYNTHGATE_ENV=production); create real users with create_portal_user instead."
            )
        created = [username for username, role, team in DEMO_USERS if self._ensure_user(username, role, team)]
        dataset_created = self._ensure_dataset()
        from federation.demo import seed_federation_demo

        sites = seed_federation_demo(
            stewards=[User.objects.get(username=name) for name in SITE_STEWARDS],
            source_file=DEMO_DATASET_FILE,
            declarations=[
                {**declared, "outcome": True} if declared["name"] == DEMO_OUTCOME else declared
                for declared in DEMO_DECLARATIONS
            ],
            epsilon_cap=DEMO_EPSILON_CAP,
        )
        self.stdout.write(f"Federated demo: {sites} site(s) registered.")
        self.stdout.write(
            f"Demo data: {len(created)} user(s) created, "
            f"{'dataset registered' if dataset_created else 'dataset already present'}."
        )
        self._print_logins()

    def _ensure_user(self, username: str, role: str, team: str) -> bool:
        user = User.objects.filter(username=username).first()
        created = user is None
        if user is None:
            # actor=None: a trusted operator on the host, the same path as create_portal_user.
            user = user_create(
                actor=None,
                username=username,
                password=DEMO_PASSWORD,
                role=role,
                team_name=team,
                # The demo's e-mail backend is the console: notifications show up in `make run`'s output.
                email=f"{username}@{DEMO_EMAIL_DOMAIN}",
            )
        elif not user.email:
            # Demo logins made before they had addresses: give them one, so notifications reach the
            # console too (an address someone set is left alone).
            User.objects.filter(pk=user.pk, email="").update(email=f"{username}@{DEMO_EMAIL_DOMAIN}")
        if role in NEEDS_SECOND_FACTOR and not mfa_enrolled(user):
            totp_enrol_with_secret(user=user, secret_base32=DEMO_TOTP_SECRET)
        return created

    def _ensure_dataset(self) -> bool:
        if SourceDataset.objects.filter(name=DEMO_DATASET_NAME).exists():
            return False
        steward = User.objects.filter(username=STEWARD).first()
        if steward is None or steward.role != Role.DATA_STEWARD or not steward.is_active:
            raise CommandError(
                f"User {STEWARD!r} is not an active data steward, so the demo dataset cannot be "
                "registered; restore that account or register a dataset in the portal."
            )
        with DEMO_DATASET_FILE.open("rb") as handle:
            dataset = dataset_register(
                actor=steward,
                name=DEMO_DATASET_NAME,
                uploaded_file=File(handle, name=DEMO_DATASET_FILE.name),
                epsilon_cap=DEMO_EPSILON_CAP,
                description="Mayo Clinic serum free light chain study (public, de-identified).",
            )
        changes = [
            {**declared, "outcome": True} if declared["name"] == DEMO_OUTCOME else declared
            for declared in DEMO_DECLARATIONS
        ]
        dataset = dataset_update_columns(actor=steward, dataset_id=dataset.pk, changes=changes)
        if dataset.status != DatasetStatus.READY:
            self._sign_off(steward, dataset)
        return True

    def _sign_off(self, steward: User, dataset: SourceDataset) -> None:
        # A new registration awaits the steward's classification sign-off; the demo accepts the
        # suggested classifications, with its hand-written declarations, so a scientist can file a
        # request (DP ones included) straight away.
        from generation.services import dataset_sign_off

        try:
            dataset_sign_off(actor=steward, dataset_id=dataset.pk)
        except ValidationFailed as exc:
            self.stderr.write(
                f"The demo dataset is registered but not signed off ({exc}); "
                "sign in as steward and sign it off on its dataset page."
            )

    def _print_logins(self) -> None:
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role, team in DEMO_USERS:
            factor = "  + code from TOTP secret below" if role in NEEDS_SECOND_FACTOR else ""
            self.stdout.write(f"  {username:<10} {Role(role).label:<16} team {team}{factor}")
        self.stdout.write(
            f"Second factor (TOTP secret for all but the scientist; add it to an authenticator app): "
            f"{DEMO_TOTP_SECRET}"
        )
