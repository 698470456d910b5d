"""What each gate check and report metric means, which direction is good, and why its threshold.

One source for the report page, the HTML export and docs/validation.md. `reason` is the coarse,
value-free sentence a requester sees when the check fails.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        "1 - total variation distance between the distributions of rows' missing-value patterns.",
        "Higher is better; 1 = the same cells are missing together as often.",
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
        "ROC AUC of a gradient-boosted model trained on the synthetic rows and tested on the locked "
        "holdout, divided by the AUC of the same model trained on the real training rows. Outcome: "
        "the column the data steward declared the outcome, when it is requested; otherwise, by "
        "convention, the first requested column classified sensitive with exactly two values.",
        "Higher is better; 1 = a model learns as much from the release as from the real data.",
        "tstr_auc_ratio_min",
        "0.80 by default. Fails only when the ratio's 95% upper bound is below the floor, and is "
        "gated only with at least 100 events and 100 non-events to test on: a 120-row holdout "
        "gives AUC intervals of about +-0.1.",
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
        "0.15 by default. Fails when above it and the 95% interval excludes 0; gated only with at "
        "least 500 holdout rows (below, shown but not gated: the interval is about +-0.3). "
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
        "0.15 by default, with the same significance and 500-row rules. Not applicable without "
        "quasi-identifiers.",
        "The synthetic data let an attacker link records about the same person.",
    ),
    "inference_risk": Entry(
        "Attribute inference risk (anonymeter)",
        "How much better than chance the release lets an attacker guess each sensitive column from "
        "the others; the worst sensitive column is reported.",
        "Lower is better.",
        "inference_risk_max",
        "0.15 by default, with the same significance and 500-row rules. Not applicable without "
        "sensitive columns.",
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
