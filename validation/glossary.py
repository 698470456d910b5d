"""What each gate check and report metric means, which direction is good, and why its threshold.

One source for the report page, the HTML export and docs/validation.md. `reason` is the coarse,
value-free sentence a requester sees when the check fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    title: str
    measures: str
    good: str  # which direction is good
    threshold_key: str  # the policy key ("" when not a policy threshold)
    why: str  # why the threshold (or the metric) is set as it is
    reason: str = ""  # coarse failure reason shown to requesters


GLOSSARY: dict[str, Entry] = {
    "requested_columns_present": Entry(
        "Requested columns present",
        "Share of the request's columns that the synthetic table contains.",
        "Must be 1 (every requested column).",
        "",
        "A release is judged against what was approved; a missing column could hide a failed test.",
        "The synthetic table does not contain every requested column.",
    ),
    "column_shape_similarity": Entry(
        "Column shapes",
        "Mean over columns of 1 - Kolmogorov-Smirnov statistic (numeric, dates) or 1 - total "
        "variation distance (categories, missing counted as a category); SDMetrics' Column Shapes.",
        "Higher is better; 1 = identical marginal distributions.",
        "column_shape_min",
        "0.75 by default: SDV's GaussianCopula scores about 0.88 on flchain; below 0.75 analysts "
        "see visibly different histograms.",
        "Column distributions differ too much from the source data.",
    ),
    "column_pair_trend_similarity": Entry(
        "Column pair trends",
        "Mean of 1 - |r_real - r_synthetic| / 2 (Pearson, two continuous columns) or 1 - total "
        "variation of the joint frequency table (other pairs, continuous columns binned on the "
        "training edges) over the pairs with a trend in the real data (|r| > 0.5 or Cramér's V > "
        "0.3), as SDMetrics' Column Pair Trends does. Not applicable when no pair has a trend.",
        "Higher is better; 1 = same pairwise relationships.",
        "column_pair_trend_min",
        "0.50 by default, a floor for broken output (reversed relationships score about 1 - |r|): "
        "on flchain GaussianCopula scores 0.87-0.89, dp_copula 0.63-0.84 at epsilon 0.05 and about "
        "0.75 at 0.5-1, independently drawn columns 0.69-0.77. A tier whose users need the "
        "relationships should set 0.80.",
        "Relationships between columns differ too much from the source data.",
    ),
    "missingness_similarity": Entry(
        "Missingness pattern",
        "1 - total variation distance between the distributions of rows' missing-value patterns "
        "(which cells of a row are missing), divided by the same figure for as many real rows held "
        "out of training, at most 1. With hundreds of rare patterns even real rows score low "
        "unscaled; the raw figure is shown beside it.",
        "Higher is better; 1 = the same cells are missing together as often as in real rows the "
        "generator never saw.",
        "missingness_similarity_min",
        "0.70 by default: missingness is often informative (a test not ordered); a generator that "
        "fills or scatters it misleads analyses. GaussianCopula scores 0.98-1.0, dp_copula at "
        "epsilon 0.05 0.87-0.98.",
        "Missing values appear in different patterns than in the source data.",
    ),
    "bound_violation_rate": Entry(
        "Declared bounds and rules",
        "Share of synthetic rows with a value outside the steward's declared bounds or outside the "
        "declared categories. Fractions in a column declared whole-number are reported beside it "
        "(bounds.integer_rate), not gated.",
        "Lower is better; 0 = every value respects the declaration.",
        "bound_violation_rate_max",
        "0 by default: an impossible value (negative age) misleads, and a category the steward left "
        "out of the declared domain is usually a small cell that must not be released.",
        "Some synthetic values fall outside the declared bounds or categories.",
    ),
    "tstr_auc_ratio": Entry(
        "Train synthetic, test real (TSTR / TRTR)",
        "ROC AUC of a model trained on the synthetic rows and tested on the locked holdout, divided "
        "by the AUC of the same kind of model trained on the real training rows. The model is a "
        "gradient-boosted one or a logistic regression, whichever predicts the real training rows "
        "better in cross-validation (the report names it). Outcome: "
        "the column the data steward declared the outcome, when it is requested; otherwise, by "
        "convention, the first requested column classified sensitive with exactly two values.",
        "Higher is better; 1 = a model learns as much from the release as from the real data.",
        "tstr_auc_ratio_min",
        "0.80 by default. Fails only when the ratio's 95% upper bound is below the floor. With at "
        "least 100 events and 100 non-events to test on the interval is Hanley-McNeil's; with "
        "fewer, a paired bootstrap of the test rows (a GaussianCopula release of 480 flchain rows, "
        "tested on 120, failed in none of 30 random splits). Below 10 events it is not run.",
        "Models trained on the synthetic data predict the outcome much worse than models trained on "
        "real data.",
    ),
    "exact_copy_rate": Entry(
        "Exact copies",
        "Share of synthetic rows identical to some training row in every released column.",
        "Lower is better; 0 = no row is copied.",
        "exact_copy_rate_max",
        "0.01 by default (tiers: 0.02 low, 0.01 medium, 0.005 high). Compare with the holdout's rate "
        "(how often an unseen real row equals a training row by chance).",
        "Too many synthetic rows are copies of source records.",
    ),
    "replicated_uniques_rate": Entry(
        "Replicated uniques",
        "Share of synthetic rows that reproduce, in every released column, a training record no "
        "other training record shares (synthpop's replicated uniques).",
        "Lower is better; 0 = no unique person is copied.",
        "replicated_uniques_rate_max",
        "0 by default: copying a common profile discloses nobody, copying a unique record discloses "
        "one person. This is the check that blocks the planted 1%-copy and outlier-copy generators "
        "at every tier.",
        "Some synthetic rows reproduce unique source records.",
    ),
    "membership_inference_auc": Entry(
        "Membership inference",
        "AUC of an attack that calls a real record a training member when the release holds a close "
        "twin (distance to closest synthetic record), training rows against equal-sized holdout rows.",
        "Lower is better; 0.5 = the release does not tell members from non-members.",
        "mia_auc_max",
        "0.60 by default. Fails when the AUC exceeds it and its 95% interval excludes 0.5. On "
        "flchain a GaussianCopula release scores 0.45-0.55 and resampled training rows with every "
        "number nudged score 0.68-0.85.",
        "The synthetic data reveal which people were in the source data.",
    ),
    "singling_out_risk": Entry(
        "Singling-out risk (anonymeter)",
        "How much more often predicates built from the release isolate exactly one training record "
        "than one holdout record, normalized (0 = no more than chance).",
        "Lower is better.",
        "singling_out_risk_max",
        "0.15 by default. Fails when above it and the 95% interval excludes 0 (Katz's log interval "
        "for the ratio of the attack's failure rates on training and holdout rows). Judged only with at "
        "least 500 training and 500 holdout rows; below, not run (the interval is about +-0.3), the "
        "risk shown, and the release blocked only where the tier requires the check. "
        "Resampling each column's real values (a marginal bootstrap) scores about 0.15-0.2: exact "
        "rare values single people out.",
        "The synthetic data let an attacker single out individual people.",
    ),
    "linkability_risk": Entry(
        "Linkability risk (anonymeter)",
        "How much better than chance the release links a person's quasi-identifiers to the rest of "
        "their record (auxiliary columns: quasi-identifiers vs the other columns).",
        "Lower is better.",
        "linkability_risk_max",
        "0.15 by default, with the same significance and 500-row rules. Not run without quasi-identifiers.",
        "The synthetic data let an attacker link records about the same person.",
    ),
    "inference_risk": Entry(
        "Attribute inference risk (anonymeter)",
        "How much better than chance the release lets an attacker guess each secret from the other "
        "columns; the secrets are the declared outcome and every sensitive column, and the worst "
        "one is reported.",
        "Lower is better.",
        "inference_risk_max",
        "0.15 by default, with the same significance and 500-row rules. Not run when the request "
        "has neither a declared outcome nor a sensitive column.",
        "The synthetic data let an attacker infer sensitive attributes of real people.",
    ),
    "dp_empirical_epsilon": Entry(
        "Empirical epsilon (DP releases)",
        "A 95%-confidence lower bound on the epsilon the release actually has, from the membership "
        "attack's true and false positive rates (TPR <= e^eps FPR and 1 - FPR <= e^eps (1 - TPR)), "
        "threshold chosen on half the records and Clopper-Pearson bounds on the other half.",
        "Lower is better; must not exceed the claimed epsilon.",
        "",
        "The threshold is the epsilon the DP synthesizer claims: a larger proven epsilon means the "
        "mechanism does not do what it says.",
        "The privacy guarantee claimed for this release could not be confirmed.",
    ),
    # The model gate's checks (validation.model_gate): a trained model judged on the locked holdout.
    "model_auc": Entry(
        "Model discrimination (AUC)",
        "ROC AUC of the model's predicted probabilities on the locked holdout (real rows it never "
        "saw), with DeLong's 95% interval.",
        "Higher is better; 0.5 = no better than chance, 1 = perfect ranking.",
        "model_auc_lower_min",
        "0.60 by default, judged on the interval's lower end, so a model passes only when it is "
        "shown to predict better than a weak floor. Not run (and blocking) when the holdout has "
        "fewer than 50 rows or fewer than 10 of either outcome value.",
        "The model does not predict the outcome well enough on unseen real rows.",
    ),
    "model_auc_vs_baseline": Entry(
        "Model vs non-private baseline",
        "The model's holdout AUC divided by the holdout AUC of a non-private baseline trained in "
        "the same job on the same rows; the interval uses DeLong's covariance of the two AUCs.",
        "Higher is better; 1 = the model predicts as well as the baseline.",
        "model_auc_ratio_min",
        "0.80 by default, as for train-on-synthetic: privacy (noise, clipping) may cost some "
        "accuracy, not most of it.",
        "The model predicts much worse than a non-private model trained on the same rows.",
    ),
    "model_calibration": Entry(
        "Model calibration",
        "Expected calibration error on the locked holdout: over ten equal-width probability bins, "
        "the row-weighted mean gap between the mean predicted probability and the observed share "
        "of events; the Brier score is shown beside it. Bins of fewer than 10 rows are not drawn.",
        "Lower is better; 0 = predicted probabilities match observed rates.",
        "calibration_ece_max",
        "0.10 by default. Fails when above it and the gap is also significant: a perfectly "
        "calibrated model shows an error of 0.05-0.10 on 150 rows, so the error is compared with "
        "its spread when labels are redrawn from the model's own probabilities (p < 0.05). Not run "
        "(and blocking) below 100 holdout rows.",
        "The model's predicted probabilities do not match observed rates on unseen real rows.",
    ),
    "model_membership_auc": Entry(
        "Model membership inference",
        "AUC of the loss-threshold attack (Yeom et al. 2018): the model's loss on a record is lower "
        "for records it was trained on. Training rows against an equal number of holdout rows, "
        "with DeLong's 95% interval.",
        "Lower is better; 0.5 = the model's outputs do not tell members from non-members.",
        "membership_auc_upper_max",
        "0.60 by default, judged on the interval's upper end: the model passes only when the attack "
        "is shown to stay below the ceiling. A deep decision tree that memorises its rows scores "
        "0.7 or more; a regularised logistic regression about 0.5. Not run (and blocking) with "
        "fewer than 50 training or holdout rows.",
        "The model's outputs reveal which people were in its training data.",
    ),
    "model_empirical_epsilon": Entry(
        "Model empirical epsilon (DP models)",
        "A 95%-confidence lower bound on the epsilon the model actually has, from the loss attack's "
        "true and false positive rates (Jagielski et al. 2020): TPR <= e^eps FPR and 1 - FPR <= "
        "e^eps (1 - TPR), threshold chosen on half the records, Clopper-Pearson bounds on the other half.",
        "Lower is better; must not exceed the claimed epsilon.",
        "",
        "The threshold is the epsilon the DP training claims: a larger proven epsilon refutes the claim.",
        "The privacy guarantee claimed for this model could not be confirmed.",
    ),
    # Report metrics that are not gate checks
    "dcr_share_closer_to_training": Entry(
        "Distance to closest record: share closer to training",
        "Share of synthetic rows nearer to a training row than to any holdout row, on equal-sized "
        "training and holdout samples (SDMetrics' DCROverfittingProtection counts the same).",
        "About 0.5 is ideal; well above 0.5 suggests overfitting.",
        "",
        "A warning, not a pass criterion: distance alone says little about privacy. Raised when the "
        "95% interval lies above 0.5.",
    ),
    "qi_replicated_uniques": Entry(
        "Replicated uniques on quasi-identifiers",
        "Share of training records unique on the quasi-identifier combination whose combination is "
        "also unique in the release, beside the same share for the holdout on an equal-sized sample.",
        "Not above the holdout's share.",
        "",
        "A warning: with coarse quasi-identifiers (age, sex) a fresh sample matches uniques by chance.",
    ),
    "rare_category_coverage": Entry(
        "Rare-category coverage",
        "Share of categories below 5% of training rows that appear in the release (counts only).",
        "Context, not a target: covering rare categories helps analyses and raises disclosure risk.",
        "",
        "Reported for reviewers; never a pass criterion.",
    ),
    "outcome_prevalence": Entry(
        "Outcome prevalence",
        "Share of the outcome's event class in training, release and holdout.",
        "Closer is better.",
        "",
        "Reported for reviewers; the column-shape check already covers it.",
    ),
}


def reason_for(check_name: str) -> str:
    entry = GLOSSARY.get(check_name)
    return entry.reason if entry and entry.reason else "A release check failed."


def title_for(check_name: str) -> str:
    """The check's glossary title ("Missingness pattern"), or its name in words if it has none."""
    entry = GLOSSARY.get(check_name)
    return entry.title if entry else check_name.replace("_", " ").capitalize()


# What a failure says about the release, in the reader's terms, and what to do next. Each pair
# reads as one sentence around the numbers: "<finding> (<value> vs <threshold>): <next step>".
FINDINGS: dict[str, tuple[str, str]] = {
    "requested_columns_present": (
        "Some requested columns are missing from the release",
        "generate again; if a column is still missing, tell an operator",
    ),
    "column_shape_similarity": (
        "Column distributions differ from the source",
        "try gaussian_copula or a bake-off of several candidates; for a DP synthesizer, a larger epsilon",
    ),
    "column_pair_trend_similarity": (
        "Relationships between columns are weaker than in the source",
        "choose a synthesizer that models them, or request fewer columns",
    ),
    "missingness_similarity": (
        "Cells go missing together in the source",
        "choose a synthesizer that models missingness jointly, or drop the gappy columns",
    ),
    "bound_violation_rate": (
        "Some values break the declared bounds or categories",
        "ask the data steward to check the column declarations",
    ),
    "tstr_auc_ratio": (
        "Models trained on the release predict the outcome worse than models trained on the real data",
        "keep the outcome's predictors in the request, try gaussian_copula or a bake-off, or (for DP) a "
        "larger epsilon",
    ),
    "exact_copy_rate": (
        "The release copies source records",
        "use a DP synthesizer, or request fewer quasi-identifiers",
    ),
    "replicated_uniques_rate": (
        "The release reproduces people who are unique in the source",
        "use a DP synthesizer, or request fewer or coarser quasi-identifiers",
    ),
    "membership_inference_auc": (
        "The release tells people in the source from people who are not",
        "use a DP synthesizer or a smaller epsilon",
    ),
    "singling_out_risk": (
        "The release lets an attacker single people out",
        "drop rare quasi-identifiers or use a DP synthesizer",
    ),
    "linkability_risk": (
        "The release links quasi-identifiers to the rest of a person's record",
        "request fewer quasi-identifiers or use a DP synthesizer",
    ),
    "inference_risk": (
        "The release lets an attacker infer a sensitive value or the outcome",
        "drop the columns that predict it, or use a DP synthesizer with a smaller epsilon",
    ),
    "dp_empirical_epsilon": (
        "The release's differential-privacy guarantee could not be confirmed",
        "do not retry; a privacy officer must look at this release",
    ),
    "model_auc": (
        "The model predicts the outcome poorly on unseen real rows",
        "add the outcome's predictors, use more training rows, or (for DP) a larger epsilon",
    ),
    "model_auc_vs_baseline": (
        "The model predicts much worse than a non-private model trained on the same rows",
        "tune the private training (clipping, epochs) or, for DP, a larger epsilon",
    ),
    "model_calibration": (
        "The model's probabilities do not match observed rates",
        "recalibrate the model (Platt or isotonic on training rows) or regularise it more",
    ),
    "model_membership_auc": (
        "The model's outputs tell people in its training data from people who are not",
        "regularise the model more (shallower trees, stronger penalty) or train it with DP",
    ),
    "model_empirical_epsilon": (
        "The model's differential-privacy guarantee could not be confirmed",
        "do not retry; a privacy officer must look at this model",
    ),
}

# The suite's warning codes (metrics["warnings"]) in words, for pages.
WARNINGS: dict[str, str] = {
    "dcr_closer_to_training": "Synthetic rows lie closer to training rows than to unseen rows more often than "
    "chance (a sign of overfitting; not a pass criterion).",
    "qi_uniques_above_holdout": "More people unique on the quasi-identifiers reappear unique in the release "
    "than chance would give (not a pass criterion).",
    "anonymeter_too_few_holdout_rows": "Too few rows for the singling-out, linkability and inference attacks to "
    "give a verdict: their risks are shown and the checks are marked not run.",
    "tstr_tested_on_training_rows": "There was no holdout, so train-on-synthetic was tested on training rows "
    "the generator saw: it flatters the release.",
    "tstr_too_few_test_events": "Fewer than 100 outcome events (or non-events) to test on: the "
    "train-on-synthetic interval comes from a bootstrap of the test rows.",
}


def warning_text(code: str) -> str:
    return WARNINGS.get(code, "A finding for reviewers.")


def _number(value: float) -> str:
    # Two decimals, except for small ceilings (0.005) that two decimals would round away.
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.1 else f"{value:.2g}"


def _numbers(check: dict[str, Any]) -> str:
    """ "0.17 vs 0.70 needed", with the 95% interval when there is one; "" without a value."""
    value, threshold = check.get("value"), check.get("threshold")
    if not isinstance(value, int | float) or isinstance(value, bool) or threshold is None:
        return ""
    ci = check.get("ci")
    interval = ""
    if ci and len(ci) == 2 and ci[0] is not None and ci[1] is not None:
        interval = f", 95% interval {_number(ci[0])} to {_number(ci[1])},"
    if check.get("direction") == "max":
        return f"{_number(value)}{interval} vs at most {_number(float(threshold))} allowed"
    return f"{_number(value)}{interval} vs {_number(float(threshold))} needed"


def check_explanation(check: dict[str, Any]) -> str:
    """One plain-words sentence about a stored gate check: what it found, its value against the
    threshold (when the viewer's copy has a value), and what to do next. For example:
    "Cells go missing together in the source (0.17 vs 0.70 needed): choose a synthesizer that
    models missingness jointly, or drop the gappy columns."
    """
    name = str(check.get("name") or "")
    title = title_for(name)
    numbers = _numbers(check)
    status = check.get("status") or ("passed" if check.get("passed") else "failed")
    if status == "not_run":
        reason = str(check.get("reason") or "It could not be run.")
        blocking = (
            " This tier requires it, so the release is blocked; only a gate override (a privacy officer's"
            " written justification, approved by a second officer) can publish it."
            if (check.get("required") and not check.get("passed"))
            else ""
        )
        measured = f" Measured anyway: {numbers}." if numbers else ""
        return f"{title} was not run: {reason}{measured}{blocking}"
    if status == "passed":
        return f"{title} passed ({numbers})." if numbers else f"{title} passed."
    if check.get("error"):
        return f"{title} could not be computed: {check.get('reason') or reason_for(name)}"
    return failure_sentence(check, numbers)


def failure_sentence(check: dict[str, Any], figures: str) -> str:
    """A failed check in plain words: its finding, `figures` (its value against the threshold, or
    only the threshold for a viewer who may not see the value), and a next step: the check's own
    value-free reason when it has one other than the generic one, else the finding's usual step."""
    name = str(check.get("name") or "")
    finding, step = FINDINGS.get(name, (reason_for(name).rstrip("."), "ask a privacy officer what it means"))
    own = str(check.get("reason") or "")
    if own and own != reason_for(name):
        return f"{finding} ({figures}). {own}" if figures else f"{finding}. {own}"
    return f"{finding} ({figures}): {step}." if figures else f"{finding}: {step}."
