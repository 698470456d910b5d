"""The released model artifact: a skops dump (never a pickle) and a loader that trusts a short list.

skops' safe format stores an object tree as JSON plus numpy arrays and rebuilds only the types it is
told to trust. skops itself trusts every scikit-learn estimator by default; a model release needs
far fewer, so `load_model_artifact` first reads the dump's schema and refuses any type outside
`TRUSTED_TYPES` (the types a SynthGate model pipeline is made of), then loads with exactly those
types trusted, and checks the result is a scikit-learn Pipeline answering `predict_proba`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from core.errors import ValidationFailed

MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
MAX_SCHEMA_BYTES = 16 * 1024 * 1024

# Every type a model artifact may contain: the pipeline and its encoder steps, the four released
# estimators, a tree's arrays, and the builtins and numpy types skops stores their attributes as.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._column_transformer._RemainderColsList",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._tree.Tree",
    # dp_sgd_mlp: the DP-SGD weights copied into scikit-learn's MLP (no torch type), and the
    # label binarizer its `predict` maps outputs back through (fitted on the declared classes).
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.preprocessing._label.LabelBinarizer",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.slice",
    "builtins.NoneType",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.float32",
    "numpy.int64",
    "numpy.int32",
    "numpy.intp",
    "numpy.bool_",
    "numpy.str_",
)


def artifact_dumps(pipeline: Any) -> tuple[bytes, str]:
    """The pipeline in skops' format, and the SHA-256 (hex) of exactly those bytes."""
    import skops.io

    data = skops.io.dumps(pipeline, compression=zipfile.ZIP_DEFLATED)
    return data, hashlib.sha256(data).hexdigest()


def _refuse(reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"This file is not a SynthGate model artifact that can be loaded safely: {reason}.",
        code="untrusted_model_artifact",
    )


def _schema(data: bytes) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > MAX_SCHEMA_BYTES:
                raise _refuse("its schema is too large")
            schema = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise _refuse("it is not a skops file") from exc
    if not isinstance(schema, dict):
        raise _refuse("it is not a skops file")
    return schema


def _types_in(node: Any) -> Iterator[str]:
    """Every `module.class` named anywhere in a skops schema (functions, methods and types too)."""
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            yield f"{module}.{name}"
        content = node.get("content")
        # A function or type node names what it refers to in its content.
        if isinstance(content, dict) and isinstance(content.get("module_path"), str):
            yield f"{content['module_path']}.{content.get('function') or content.get('name') or ''}"
        for value in node.values():
            yield from _types_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types_in(value)


def artifact_types(data: bytes) -> set[str]:
    """The types a skops dump names (read from its schema, nothing is loaded)."""
    return set(_types_in(_schema(data)))


def load_model_artifact(data: bytes) -> Any:
    """Load a model artifact, trusting `TRUSTED_TYPES` only; anything else is refused
    (ValidationFailed, code `untrusted_model_artifact`) before any object is built."""
    import skops.io
    from sklearn.pipeline import Pipeline
    from skops.io.exceptions import UntrustedTypesFoundException

    if not isinstance(data, bytes | bytearray) or not data:
        raise _refuse("it is empty")
    if len(data) > MAX_ARTIFACT_BYTES:
        raise _refuse("it is too large")
    data = bytes(data)
    untrusted = sorted(artifact_types(data) - set(TRUSTED_TYPES))
    if untrusted:
        # Type names come from the file, not from a source dataset; still, keep the message short.
        raise _refuse(
            f"it contains types outside the model allow-list ({', '.join(t[:80] for t in untrusted[:5])})"
        )
    try:
        model = skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise _refuse("skops found types outside the model allow-list") from exc
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, zipfile.BadZipFile) as exc:
        raise _refuse("skops could not read it") from exc
    if not isinstance(model, Pipeline) or not hasattr(model, "predict_proba"):
        raise _refuse("it is not a model pipeline")
    return model
