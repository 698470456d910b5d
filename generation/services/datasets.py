"""Source-dataset intake, column review and sign-off.

Intake: stream the upload to a private temporary file under the cap, validate and parse it,
profile it, split off a fixed holdout, and store both splits encrypted. A rejected upload leaves
nothing behind but an audit row (reason code only). Review: stewards edit each column's
classification and declared metadata; sign-off snapshots them as a numbered version, and only
then can requests be filed.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.ids import parse_uuid
from core.roles import Role, has_role
from generation.choices import Classification, ColumnKind, DatasetStatus
from generation.intake import ParsedTable, frame_to_parquet_bytes, parse_upload
from generation.models import ClassificationVersion, DatasetColumn, SourceDataset
from generation.policies import outcome_refusal, second_outcome_refusal, suggest_classification
from generation.profiling import ColumnProfile, profile_frame, small_cell_total, unique_share
from generation.services.budget import epsilon_to_micro
from generation.storage import delete_stored, storage_root, store_encrypted

STEWARDS = (Role.DATA_STEWARD, Role.ADMIN)


def _require_steward(actor: Any, action: str, target_id: object) -> None:
    if not has_role(actor, *STEWARDS):
        audit_denied(
            actor=actor,
            action=action,
            target_type="dataset",
            target_id=target_id,
            reason="data steward role required",
        )
        raise PermissionDenied("Only data stewards can register and review source datasets.")


def _chunks_of(uploaded: Any) -> Iterator[bytes]:
    if hasattr(uploaded, "chunks"):
        yield from uploaded.chunks()
    else:
        yield uploaded.read()


def _spool(uploaded: Any, folder: Path) -> tuple[Path, str, int]:
    """Copy the upload to a private temp file under the cap; return (path, sha256, size)."""
    cap = settings.SYNTHGATE_MAX_UPLOAD_BYTES
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            for chunk in _chunks_of(uploaded):
                size += len(chunk)
                if size > cap:
                    raise ValidationFailed(
                        f"The file is larger than the {cap // (1024 * 1024)} MB limit; upload a smaller extract.",
                        code="file_too_large",
                        fields={"file": "too_large"},
                    )
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def _audit_rejection(actor: Any, name: str, exc: ValidationFailed) -> None:
    audit_denied(
        actor=actor,
        action="dataset.register",
        target_type="dataset",
        target_id=name[:64] or "-",
        reason=exc.code,
    )


def dataset_register(
    *,
    actor: Any,
    name: str,
    uploaded_file: Any,
    epsilon_cap: Any,
    description: str = "",
    encoding: str | None = None,
    delimiter: str | None = None,
) -> SourceDataset:
    """Validate, profile, split and store a source table as a new version of `name`."""
    _require_steward(actor, "dataset.register", "-")
    name = (name or "").strip()
    try:
        if not name or len(name) > 120:
            raise ValidationFailed("Name must be 1 to 120 characters.", fields={"name": "required"})
        cap_micro = epsilon_to_micro(epsilon_cap, field="epsilon_cap", is_cap=True)
        if uploaded_file is None:
            raise ValidationFailed(
                "Attach a CSV or Parquet file.", code="missing_file", fields={"file": "required"}
            )
        return _register(
            actor=actor,
            name=name,
            uploaded_file=uploaded_file,
            cap_micro=cap_micro,
            description=description,
            encoding=encoding,
            delimiter=delimiter,
        )
    except ValidationFailed as exc:
        _audit_rejection(actor, name, exc)
        raise


def _register(
    *,
    actor: Any,
    name: str,
    uploaded_file: Any,
    cap_micro: int,
    description: str,
    encoding: str | None,
    delimiter: str | None,
) -> SourceDataset:
    spool_dir = storage_root() / "tmp"
    spool_dir.mkdir(mode=0o700, exist_ok=True)
    path, sha256, size = _spool(uploaded_file, spool_dir)
    stored: list[str] = []
    try:
        parsed = parse_upload(path, encoding=encoding, delimiter=delimiter)
        profiles = profile_frame(parsed.frame, k=settings.SYNTHGATE_SMALL_CELL_K)
        training, holdout, seed = split_holdout(parsed.frame)
        train_file = store_encrypted(frame_to_parquet_bytes(training), folder="sources", suffix=".parquet")
        stored.append(train_file.relative_path)
        hold_file = store_encrypted(frame_to_parquet_bytes(holdout), folder="holdouts", suffix=".parquet")
        stored.append(hold_file.relative_path)
        with transaction.atomic():
            dataset = _create_rows(
                actor=actor,
                name=name,
                description=description,
                parsed=parsed,
                profiles=profiles,
                sha256=sha256,
                size=size,
                cap_micro=cap_micro,
                train_path=train_file.relative_path,
                hold_path=hold_file.relative_path,
                training_rows=len(training),
                holdout_rows=len(holdout),
                seed=seed,
            )
    except BaseException:
        for relative in stored:
            delete_stored(relative)
        raise
    finally:
        path.unlink(missing_ok=True)
    return dataset


def new_holdout_seed() -> int:
    """A fresh, unpredictable split seed per registration (recorded on the dataset). The test
    suite pins it, so a release's gate verdict in a test does not depend on a random split."""
    return secrets.randbits(63)


def split_holdout(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """A fixed random share of rows, locked away as the non-member reference for validation."""
    share = settings.SYNTHGATE_HOLDOUT_SHARE
    seed = new_holdout_seed()
    order = np.random.default_rng(seed).permutation(len(frame))
    held = min(len(frame) - 1, max(1, round(share * len(frame)))) if len(frame) > 1 else 0
    holdout = frame.iloc[np.sort(order[:held])].reset_index(drop=True)
    training = frame.iloc[np.sort(order[held:])].reset_index(drop=True)
    return training, holdout, seed


def _create_rows(
    *,
    actor: Any,
    name: str,
    description: str,
    parsed: ParsedTable,
    profiles: list[ColumnProfile],
    sha256: str,
    size: int,
    cap_micro: int,
    train_path: str,
    hold_path: str,
    training_rows: int,
    holdout_rows: int,
    seed: int,
) -> SourceDataset:
    version = (SourceDataset.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0) + 1
    suggestions = {
        p.name: suggest_classification(name=p.name, kind=p.kind, patterns=p.patterns) for p in profiles
    }
    quasi = [n for n, (c, _) in suggestions.items() if c == Classification.QUASI_IDENTIFIER]
    dataset = SourceDataset.objects.create(
        name=name,
        description=description or "",
        version=version,
        rows=len(parsed.frame),
        sha256=sha256,
        size_bytes=size,
        file_format=parsed.format,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        storage_path=train_path,
        holdout_path=hold_path,
        training_rows=training_rows,
        holdout_rows=holdout_rows,
        holdout_share=settings.SYNTHGATE_HOLDOUT_SHARE,
        holdout_seed=seed,
        reidentification_risk=unique_share(parsed.frame, quasi),
        risk_columns=quasi,
        small_cell_count=small_cell_total(profiles),
        epsilon_cap_micro=cap_micro,
        uploaded_by=actor,
    )
    DatasetColumn.objects.bulk_create(
        DatasetColumn(
            dataset=dataset,
            position=i,
            name=p.name,
            kind=p.kind,
            classification=suggestions[p.name][0],
            suggested_classification=suggestions[p.name][0],
            suggestion_reason=suggestions[p.name][1],
            missing_rate=p.missing_rate,
            distinct=p.distinct,
            stats=p.stats,
            declared=prefill_declared(p),
        )
        for i, p in enumerate(profiles)
    )
    audit_record(
        actor=actor,
        action="dataset.register",
        target_type="dataset",
        target_id=dataset.pk,
        details={
            "name": name,
            "version": version,
            "rows": dataset.rows,
            "sha256": sha256,
            "columns": [p.name for p in profiles],
            "holdout_rows": holdout_rows,
        },
    )
    return dataset


def prefill_declared(profile: ColumnProfile) -> dict[str, Any]:
    """A starting point for the steward's declaration, from the profile.

    Only categories seen at least k times are pre-filled: a declared domain is public metadata,
    so a rare value must be added deliberately, not leak through a default.
    """
    stats = profile.stats
    if profile.kind == ColumnKind.NUMERIC and "min" in stats:
        return {
            "lower": stats["min"],
            "upper": stats["max"],
            "integer": stats.get("integer", False),
            "unit": "",
        }
    if profile.kind == ColumnKind.DATETIME and "min" in stats:
        return {"lower": stats["min"], "upper": stats["max"], "unit": ""}
    if profile.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return {"categories": stats.get("categories_at_least_k", []), "unit": ""}
    return {}


# --- Review and sign-off -------------------------------------------------------------------------


def dataset_get_for_steward(*, actor: Any, dataset_id: Any, action: str) -> SourceDataset:
    from generation.selectors import datasets_visible_to

    dataset = datasets_visible_to(user=actor).filter(pk=parse_uuid(dataset_id)).first()
    if dataset is None:
        raise NotFound("No such dataset.")
    _require_steward(actor, action, dataset.pk)
    return dataset


def _clean_declared(column: DatasetColumn, change: dict[str, Any]) -> dict[str, Any]:
    declared = dict(column.declared)
    for key in ("lower", "upper"):
        if key in change:
            declared[key] = _bound(column, key, change[key])
    if "categories" in change:
        categories = change["categories"]
        if not isinstance(categories, list) or not all(isinstance(c, str | int | float) for c in categories):
            raise ValidationFailed(
                f"Categories of `{column.name}` must be a list of values.", fields={column.name: "categories"}
            )
        declared["categories"] = sorted({str(c).strip() for c in categories if str(c).strip()})
    if "unit" in change:
        declared["unit"] = str(change["unit"] or "")[:40]
    if "outcome" in change:
        declared["outcome"] = _outcome_flag(column, change["outcome"])
    lower, upper = declared.get("lower"), declared.get("upper")
    if lower is not None and upper is not None and _as_number(lower) > _as_number(upper):
        raise ValidationFailed(
            f"`{column.name}`: the lower bound is above the upper bound.", fields={column.name: "bounds"}
        )
    return declared


def _outcome_flag(column: DatasetColumn, value: Any) -> bool:
    # Strictly a boolean: "false" as text would be truthy and silently declare the outcome.
    if not isinstance(value, bool):
        raise ValidationFailed(
            f"`{column.name}`: outcome must be true or false.", fields={column.name: "outcome"}
        )
    return value


def _check_outcome(columns: list[DatasetColumn], previously: set[str]) -> None:
    """The declared outcome, after all of a review's edits: eligible, and at most one per dataset.

    Checked on the edited state as a whole, so one review can move the flag from one column to
    another, and an edit that makes the outcome ineligible (a third category) is refused too.
    """
    flagged = [c for c in columns if c.declared.get("outcome")]
    for column in flagged:
        refusal = outcome_refusal(
            name=column.name, kind=column.kind, classification=column.classification, declared=column.declared
        )
        if refusal:
            raise ValidationFailed(refusal, code="invalid_outcome", fields={column.name: "outcome"})
    refusal = second_outcome_refusal(flagged=[c.name for c in flagged], previously=previously)
    if refusal:
        newcomer = next((c.name for c in flagged if c.name not in previously), flagged[-1].name)
        raise ValidationFailed(refusal, code="second_outcome", fields={newcomer: "outcome"})


def _as_number(bound: Any) -> float:
    return pd.Timestamp(bound).timestamp() if isinstance(bound, str) else float(bound)


def _bound(column: DatasetColumn, key: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if column.kind == ColumnKind.DATETIME:
        try:
            return pd.Timestamp(str(value)).isoformat()
        except ValueError:
            raise ValidationFailed(
                f"`{column.name}`: {key} must be a date like 2020-01-31.", fields={column.name: key}
            ) from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValidationFailed(f"`{column.name}`: {key} must be a finite number.", fields={column.name: key})
    return number


def dataset_update_columns(*, actor: Any, dataset_id: Any, changes: list[dict[str, Any]]) -> SourceDataset:
    """Edit classifications and declared metadata. Any edit reopens review (a new sign-off)."""
    dataset = dataset_get_for_steward(actor=actor, dataset_id=dataset_id, action="dataset.review")
    columns = {c.name: c for c in dataset.columns.all()}
    previous_outcomes = {c.name for c in columns.values() if c.declared.get("outcome")}
    edited: dict[str, list[str]] = {}
    for change in changes:
        column = columns.get(str(change.get("name", "")))
        if column is None:
            raise ValidationFailed(
                f"Column `{change.get('name')}` is not in this dataset.", fields={"columns": "unknown"}
            )
        if "classification" in change:
            if change["classification"] not in Classification.values:
                raise ValidationFailed(
                    f"`{column.name}`: classification must be one of {', '.join(Classification.values)}.",
                    fields={column.name: "classification"},
                )
            column.classification = change["classification"]
        column.declared = _clean_declared(column, change)
        edited[column.name] = sorted(k for k in change if k != "name")
    _check_outcome(list(columns.values()), previous_outcomes)
    with transaction.atomic():
        for column in columns.values():
            if column.name in edited:
                column.save(update_fields=["classification", "declared"])
        if edited and dataset.status == DatasetStatus.READY:
            dataset.status = DatasetStatus.PENDING_REVIEW
            dataset.save(update_fields=["status"])
        audit_record(
            actor=actor,
            action="dataset.review",
            target_type="dataset",
            target_id=dataset.pk,
            details={"edited": edited},
        )
    return dataset


def column_spec_snapshot(column: DatasetColumn) -> dict[str, Any]:
    return {
        "name": column.name,
        "kind": column.kind,
        "classification": column.classification,
        **{k: column.declared.get(k) for k in ("lower", "upper", "categories", "unit", "integer")},
        # Pinned into each job's metadata, where validation reads which column TSTR predicts.
        "outcome": bool(column.declared.get("outcome")),
    }


def dataset_sign_off(*, actor: Any, dataset_id: Any) -> SourceDataset:
    """Snapshot the reviewed columns as the next classification version; requests may then be filed."""
    dataset = dataset_get_for_steward(actor=actor, dataset_id=dataset_id, action="dataset.sign_off")
    if dataset.status == DatasetStatus.READY:
        return dataset  # already signed off and unchanged since: a no-op
    if dataset.status != DatasetStatus.PENDING_REVIEW:
        raise Conflict("Only a dataset awaiting review can be signed off.", code="invalid_transition")
    _check_declarations_complete(dataset)
    with transaction.atomic():
        locked = SourceDataset.objects.select_for_update().get(pk=dataset.pk)
        number = locked.classification_version + 1
        snapshot = [column_spec_snapshot(c) for c in locked.columns.order_by("position")]
        quasi = [c["name"] for c in snapshot if c["classification"] == Classification.QUASI_IDENTIFIER]
        ClassificationVersion.objects.create(
            dataset=locked,
            number=number,
            columns=snapshot,
            signed_off_by=actor,
            signed_off_name=actor.get_username(),
            reidentification_risk=locked.reidentification_risk,
        )
        locked.classification_version, locked.status = number, DatasetStatus.READY
        locked.save(update_fields=["classification_version", "status"])
        audit_record(
            actor=actor,
            action="dataset.sign_off",
            target_type="dataset",
            target_id=locked.pk,
            details={
                "classification_version": number,
                "classifications": {c["name"]: c["classification"] for c in snapshot},
            },
        )
        if sorted(quasi) != sorted(locked.risk_columns):
            _enqueue_risk_estimate(locked.pk)
    return locked


def _check_declarations_complete(dataset: SourceDataset) -> None:
    """Every column that can be synthesized needs a declared domain (DP synthesis depends on it)."""
    for column in dataset.columns.exclude(classification=Classification.DIRECT_IDENTIFIER):
        declared = column.declared
        if column.kind in (ColumnKind.NUMERIC, ColumnKind.DATETIME):
            if declared.get("lower") is None or declared.get("upper") is None:
                raise ValidationFailed(
                    f"Declare lower and upper bounds for `{column.name}` before signing off.",
                    fields={column.name: "bounds"},
                )
        elif column.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and not declared.get("categories"):
            raise ValidationFailed(
                f"Declare the categories of `{column.name}` before signing off.",
                fields={column.name: "categories"},
            )


def _enqueue_risk_estimate(dataset_id: Any) -> None:
    from portal.celery import app

    # The estimate reads source rows, so it runs in a worker, never in the web process.
    transaction.on_commit(lambda: app.send_task(RISK_TASK, kwargs={"dataset_id": str(dataset_id)}))


RISK_TASK = "synthgate.datasets.estimate_risk"


def dataset_estimate_risk(*, dataset_id: Any) -> float | None:
    """Recompute the re-identification estimate for the signed-off quasi-identifiers (worker side)."""
    from generation.storage import read_encrypted_parquet

    dataset = SourceDataset.objects.filter(pk=parse_uuid(dataset_id)).first()
    if dataset is None:
        return None
    quasi = list(
        dataset.columns.filter(classification=Classification.QUASI_IDENTIFIER).values_list("name", flat=True)
    )
    frame = pd.concat(
        [read_encrypted_parquet(dataset.storage_path), read_encrypted_parquet(dataset.holdout_path)]
    )
    risk = unique_share(frame, quasi)
    with transaction.atomic():
        SourceDataset.objects.filter(pk=dataset.pk).update(reidentification_risk=risk, risk_columns=quasi)
        audit_record(
            actor=None,
            action="dataset.risk_estimate",
            target_type="dataset",
            target_id=dataset.pk,
            details={"quasi_identifiers": quasi, "unique_share": risk, "at": timezone.now().isoformat()},
        )
    return risk
