"""The ClientApp a site's SuperNode runs: local training and evaluation on that site's data only.

The SuperNode's `--node-config` names the site and its own files (site-name, train-path,
holdout-path, encoding-path); nothing else about other sites reaches this process. What leaves it:
the model parameters after local training (masked by SecAgg+ when the study uses it, clipped to
the clipping norm when client-side clipping is asked for), a clipped flag, the schema hash and
row sanity for the health check, and at the end the model gate's aggregate metrics on the site's
locked holdout (`task.site_evaluation`: AUCs with intervals, calibration bins of 10+ rows, the
membership attack's AUC and empirical epsilon bound).

Mods, outermost first: SecAgg+ (`secaggplus_mod`) and client-side fixed clipping
(`fixedclipping_mod`), each applied only when the server's workflow asks for it, so the same app
serves studies with and without secure aggregation.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from .task import (
    encode,
    holdout_log_loss,
    missing_columns,
    n_features,
    scale_update,
    site_evaluation,
    spec_hash,
    train,
    update_norm,
)  # numpy only at import time: pandas and sklearn load when a message needs them


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    from federation.runtime.sitedata import read_site_frame

    return read_site_frame(path)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, for the metrics' JSON."""
    return value.item() if hasattr(value, "item") else str(value)


@lru_cache(maxsize=2)
def _spec(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class SiteClient(NumPyClient):
    def __init__(self, node_config: dict[str, Any], run_config: dict[str, Any]) -> None:
        self.site = str(node_config["site-name"])
        self.train_path = str(node_config["train-path"])
        self.holdout_path = str(node_config["holdout-path"])
        self.spec = _spec(str(node_config["encoding-path"]))
        self.run_config = run_config
        # The poisoned-update attack the tests play: honoured only under the test settings.
        scale = float(node_config.get("test-poison-scale", 0.0) or 0.0)
        self.poison_scale = scale if os.environ.get("SYNTHGATE_ENV") == "test" and scale else 0.0

    def get_properties(self, config: dict[str, Any]) -> dict[str, Any]:
        rows_ok = True
        try:
            train_frame, holdout_frame = _load(self.train_path), _load(self.holdout_path)
            rows_ok = (
                len(train_frame) > 0
                and len(holdout_frame) > 0
                and not missing_columns(train_frame, self.spec)
                and not missing_columns(holdout_frame, self.spec)
            )
        except Exception:  # noqa: BLE001 - the health report says "not ok"; no detail leaves the site
            rows_ok = False
        return {
            "site": self.site,
            "schema_hash": spec_hash(self.spec),
            "rows_ok": bool(rows_ok),
            "n_features": n_features(self.spec),
        }

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        X, y = encode(_load(self.train_path), self.spec)
        new = train(
            parameters,
            X,
            y,
            epochs=int(self.run_config["local-epochs"]),
            learning_rate=float(self.run_config["learning-rate"]),
        )
        if self.poison_scale:
            new = scale_update(new, parameters, self.poison_scale)
        metrics: dict[str, Any] = {"site": self.site}
        if KEY_CLIPPING_NORM in config:
            # Client-side clipping (SecAgg+ studies): one bit per round says whether it bit.
            metrics["clipped"] = int(update_norm(new, parameters) > float(config[KEY_CLIPPING_NORM]))
        # Weight 1: the aggregate is the unweighted mean the DP noise is calibrated for, and no
        # site's row count leaves the site.
        return new, 1, metrics

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, int, dict]:
        train_xy = encode(_load(self.train_path), self.spec)
        holdout_xy = encode(_load(self.holdout_path), self.spec)
        gate_metrics = site_evaluation(
            parameters, train_xy, holdout_xy, seed=int(self.run_config.get("seed", 0))
        )
        loss = holdout_log_loss(parameters, *holdout_xy)
        # Flower's metrics are flat scalars; the gate's metrics are nested aggregates, so they
        # travel as one JSON string, parsed by the ServerApp (non-finite numbers become null).
        encoded = json.dumps(gate_metrics, default=_plain)
        return (loss if np.isfinite(loss) else 0.0), 1, {"site": self.site, "model_metrics": encoded}


def client_fn(context: Context) -> Any:
    return SiteClient(dict(context.node_config), dict(context.run_config)).to_client()


def secaggplus_when_asked(msg: Message, ctxt: Context, call_next: Any) -> Message:
    """Flower's `secaggplus_mod` for the messages of a SecAgg+ workflow; others pass through."""
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def clipping_when_asked(msg: Message, ctxt: Context, call_next: Any) -> Message:
    """Flower's `fixedclipping_mod` when the server's DP wrapper sends a clipping norm."""
    if msg.metadata.message_type == MessageType.TRAIN:
        configs = msg.content.config_records
        if any(KEY_CLIPPING_NORM in record for record in configs.values()):
            return fixedclipping_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


app = ClientApp(client_fn=client_fn, mods=[secaggplus_when_asked, clipping_when_asked])
