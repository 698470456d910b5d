"""DP model releases (issue 15): a `dp_model` request trains one differentially private classifier.

A request names the dataset's declared outcome as the target, feature columns, a model family
(`MODEL_FAMILIES`: diffprivlib's LogisticRegression, RandomForestClassifier, DecisionTreeClassifier,
and a DP-SGD MLP trained with Opacus, generation.modeling.dpsgd) and epsilon (and, for DP-SGD only,
delta). Everything the model's privacy rests on comes from the steward's declarations, never
from the data:

* filing time: `model_declaration_refusals(family=, target=, features=, column_specs=)` reads the
  signed-off column specs only and returns plain sentences naming each column and what to declare
  (an unknown family; a target that is not the declared outcome or not two declared values; a
  numeric feature without declared lower < upper; a categorical feature without declared
  categories; date, free-text and identifier features; a declaration read from the data, i.e. a
  profile suggestion rather than the steward's or a DP estimate; the target among the features);
* encoding (generation.modeling.encoding): numeric features clipped to the declared bounds and
  scaled to [0, 1], a declared midpoint plus a missing indicator for gaps, categoricals one-hot over
  the declared categories, booleans 0/1; the scikit-learn preprocessor is fitted on a frame built
  from the declarations, so it holds no statistic of the rows;
* privacy parameters (generation.modeling.families): logistic regression's data_norm is
  sqrt(encoded features), the trees' bounds are (0, 1) per feature and classes are [0, 1];
  PrivacyLeakWarning is an error inside the fit, and epsilon is spent once per job (one fit);
* the artifact (generation.modeling.artifacts): one scikit-learn Pipeline (encoder + a plain
  scikit-learn estimator the DP fit was copied into) dumped in skops' safe format, with the SHA-256
  of those bytes; `load_model_artifact` loads it trusting a short explicit list of types and refuses
  anything else.

`train_dp_model(training, ModelSpec(...), seed=, on_progress=)` returns a `TrainedModel`: the
artifact, its hash, the encoded feature names, the privacy facts (the shape of a DP synthesizer's
receipt facts, plus the model's parameters, each marked "source": "steward declaration", and what is
covered and not covered), and in-memory helpers for this job's validation: `predict_proba` (the DP
model), `baseline_proba` (a non-private model of the same family trained on the same rows, never
stored or released), `labels` and `labelled` (the target as 0/1 by the declared positive class: the
second declared category, or 1/True). `restore_trained_model(training, spec, artifact=, sha256=,
privacy_facts=, seed=)` rebuilds the TrainedModel of an earlier fit from its saved artifact (hash
checked first) without running any DP mechanism.
"""

from __future__ import annotations

from generation.modeling.artifacts import TRUSTED_TYPES, load_model_artifact
from generation.modeling.encoding import model_declaration_refusals
from generation.modeling.families import MODEL_FAMILIES, ModelFamily, is_model_family, model_family_label
from generation.modeling.training import ModelSpec, TrainedModel, restore_trained_model, train_dp_model

__all__ = [
    "MODEL_FAMILIES",
    "TRUSTED_TYPES",
    "ModelFamily",
    "ModelSpec",
    "TrainedModel",
    "is_model_family",
    "load_model_artifact",
    "model_declaration_refusals",
    "model_family_label",
    "restore_trained_model",
    "train_dp_model",
]
