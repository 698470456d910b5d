"""The ServerApp: health check, the federated rounds, the per-round audit events, the per-site
evaluation.

Strategy stack (Flower's legacy strategies, because Flower's SecAgg+ workflow drives them):

    Governed (this module: validation, dropout policy, accountant, audit event)
      -> DifferentialPrivacyServerSideFixedClipping   (no SecAgg+: the server clips each update)
         or DifferentialPrivacyClientSideFixedClipping (SecAgg+: sites clip with fixedclipping_mod)
         -> FedAvg (every update weighted 1)

Without SecAgg+ the server sees each site's update, so `federation.runtime.validation` rejects
schema failures and norm outliers before clipping. With SecAgg+ only the masked sum is visible:
no per-site norm can be checked (the round event then has `norm_summary: null`), influence is
bounded by client-side clipping, and the clipped fraction comes from each site's one-bit report.

Events are appended as JSON lines to the run config's `events-path` (the supervisor tails it);
the final model is written to `model-path` (numpy .npz). Only aggregates and site names are in the
events, never a row or an individual site's update.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.common import (
    EvaluateIns,
    FitRes,
    GetPropertiesIns,
    Parameters,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.constant import MessageTypeLegacy
from flwr.compat.common import recorddict_compat as compat
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

from federation.runtime.accounting import SiteLevelAccountant
from federation.runtime.validation import norm_summary, schema_problem, validate_round

from .task import initial_parameters, n_features, parameters_sha256, spec_hash


class EventLog:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def write(self, event: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, allow_nan=False, default=_jsonable) + "\n")
            handle.flush()


def secagg_shares(*, sites: int, min_sites: int) -> tuple[float, int]:
    """SecAgg+'s share count and reconstruction threshold for a study.

    Every sampled site holds a share of every other's secrets (`num_shares=1.0`, Flower's "all
    sampled nodes", which also holds when a site is missing from a round). A round goes on while
    each site keeps at least `threshold` live neighbours, so the threshold is the study's quorum
    (`min_sites`, at least 2), but below the number of sites: Flower refuses a threshold equal to
    the share count, which `min_sites == sites` used to ask for (every such study failed at start).
    The quorum itself is still enforced per round by the governed strategy.
    """
    if sites < 2:
        raise StudyFailed("secure aggregation needs at least two sites")
    return 1.0, max(2, min(min_sites, sites - 1))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class StudyFailed(RuntimeError):
    """The run cannot go on under the study's policy (quorum lost, a site dropped under "fail")."""


class Governed(Strategy):
    """Validates updates, applies the dropout policy, accounts and audits each round."""

    def __init__(
        self,
        inner: Strategy,
        *,
        events: EventLog,
        node_sites: dict[int, str],
        total_sites: int,
        min_sites: int,
        dropout_policy: str,
        secure: bool,
        clipping_norm: float | None,
        accountant: SiteLevelAccountant | None,
        reference_shapes: list[np.ndarray],
    ) -> None:
        super().__init__()
        self.inner = inner
        self.events = events
        self.node_sites = node_sites
        self.total_sites = total_sites
        self.min_sites = min_sites
        self.dropout_policy = dropout_policy
        self.secure = secure
        self.clipping_norm = clipping_norm
        self.accountant = accountant
        self.reference_shapes = reference_shapes
        self.current: list[np.ndarray] = []
        self.sampled: list[str] = []
        self.rounds_completed = 0
        self.last_hash = ""

    def __repr__(self) -> str:
        return f"Governed({self.inner!r})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> list:
        self.current = parameters_to_ndarrays(parameters)
        # Only sites that passed the health check train (a node that failed it stays idle).
        instructions = [
            (proxy, ins)
            for proxy, ins in self.inner.configure_fit(server_round, parameters, client_manager)
            if proxy.node_id in self.node_sites
        ]
        self.sampled = sorted(
            self.node_sites.get(proxy.node_id, str(proxy.node_id)) for proxy, _ in instructions
        )
        return instructions

    def _site(self, proxy: ClientProxy, res: FitRes) -> str:
        return str(res.metrics.get("site") or self.node_sites.get(proxy.node_id, proxy.node_id))

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ) -> tuple[Parameters | None, dict[str, Any]]:
        answered = sorted(self._site(proxy, res) for proxy, res in results)
        dropped = sorted(set(self.sampled) - set(answered))
        if (failures or dropped) and self.dropout_policy == "fail":
            raise StudyFailed(f"round {server_round}: sites dropped out ({', '.join(dropped) or 'unknown'})")
        excluded: list[dict[str, str]] = [{"site": site, "reason": "dropped out"} for site in dropped]
        kept = list(results)
        norms: list[float] = []
        clipped_fraction: float | None = None
        if not self.secure:
            updates = [parameters_to_ndarrays(res.parameters) for _, res in results]
            verdicts = validate_round(updates, self.current)
            kept = []
            for verdict, (proxy, res) in zip(verdicts, results, strict=True):
                if verdict.reason:
                    excluded.append({"site": self._site(proxy, res), "reason": verdict.reason})
                else:
                    kept.append((proxy, res))
                    norms.append(float(verdict.norm or 0.0))
            if self.clipping_norm is not None and norms:
                clipped_fraction = sum(norm > self.clipping_norm for norm in norms) / len(norms)
        else:
            bits = [int(res.metrics["clipped"]) for _, res in results if "clipped" in res.metrics]
            clipped_fraction = sum(bits) / len(bits) if bits else None
        if len(kept) < self.min_sites:
            raise StudyFailed(
                f"round {server_round}: {len(kept)} usable updates, fewer than the quorum of {self.min_sites}"
            )
        parameters, metrics = self.inner.aggregate_fit(server_round, kept, [])
        if parameters is None:
            raise StudyFailed(f"round {server_round}: the aggregation produced no model")
        aggregate = parameters_to_ndarrays(parameters)
        problem = schema_problem(aggregate, self.reference_shapes)
        if problem:
            raise StudyFailed(f"round {server_round}: aggregate failed validation ({problem})")
        epsilon: float | None = None
        if self.accountant is not None:
            # Every available site is asked each round: not random sampling, so no amplification.
            self.accountant.step(sampled_sites=len(self.sampled), total_sites=self.total_sites)
            epsilon = _finite(self.accountant.epsilon())
        self.rounds_completed = server_round
        self.last_hash = parameters_sha256(aggregate)
        kept_sites = sorted(self._site(proxy, res) for proxy, res in kept)
        self.events.write(
            {
                "type": "round",
                "round": server_round,
                "sites": kept_sites,
                "excluded": excluded,
                "norm_summary": norm_summary(norms),
                "clipped_fraction": clipped_fraction,
                "epsilon": epsilon,
                "model_sha256": self.last_hash,
                "secure_aggregation": self.secure,
            }
        )
        return parameters, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list:
        return []  # the per-site evaluation runs once, on the final model (see `_evaluate_sites`)

    def aggregate_evaluate(
        self, server_round: int, results: list, failures: list
    ) -> tuple[float | None, dict]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> None:
        return None


def _ask(
    grid: Grid, node_ids: list[int], content_of: Any, message_type: str, timeout: float
) -> list[Message]:
    messages = [
        Message(content=content_of(), dst_node_id=node_id, message_type=message_type) for node_id in node_ids
    ]
    return list(grid.send_and_receive(messages, timeout=timeout))


def _wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    nodes = list(grid.get_node_ids())
    while len(nodes) < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        nodes = list(grid.get_node_ids())
    return sorted(nodes)


def _health(grid: Grid, cfg: dict[str, Any], spec: dict[str, Any], events: EventLog) -> dict[int, str]:
    total, min_sites = int(cfg["num-sites"]), int(cfg["min-sites"])
    nodes = _wait_for_nodes(grid, total, float(cfg["connect-timeout"]))
    replies = _ask(
        grid,
        nodes,
        lambda: compat.getpropertiesins_to_recorddict(GetPropertiesIns({})),
        MessageTypeLegacy.GET_PROPERTIES,
        float(cfg["round-timeout"]),
    )
    expected = spec_hash(spec)
    healthy: dict[int, str] = {}
    reported: set[str] = set()
    for reply in replies:
        if not reply.has_content():
            continue
        properties = compat.recorddict_to_getpropertiesres(reply.content).properties
        site = str(properties.get("site"))
        schema_ok = properties.get("schema_hash") == expected
        rows_ok = bool(properties.get("rows_ok"))
        reported.add(site)
        events.write(
            {
                "type": "health",
                "site": site,
                "connected": True,
                "schema_hash": properties.get("schema_hash"),
                "schema_ok": schema_ok,
                "rows_ok": rows_ok,
            }
        )
        if schema_ok and rows_ok:
            healthy[reply.metadata.src_node_id] = site
    answered = set(healthy.values()) | reported
    for site in json.loads(str(cfg["site-names"])):
        if site not in answered:
            events.write(
                {"type": "health", "site": site, "connected": False, "schema_hash": None, "rows_ok": False}
            )
    missing = total - len(healthy)
    if missing and (cfg["dropout-policy"] == "fail" or len(healthy) < min_sites):
        raise StudyFailed(f"{len(healthy)} of {total} sites connected and healthy (quorum {min_sites})")
    return healthy


def _evaluate_sites(
    grid: Grid,
    node_sites: dict[int, str],
    parameters: list[np.ndarray],
    cfg: dict[str, Any],
    events: EventLog,
) -> None:
    replies = _ask(
        grid,
        sorted(node_sites),
        lambda: compat.evaluateins_to_recorddict(EvaluateIns(ndarrays_to_parameters(parameters), {}), True),
        MessageType.EVALUATE,
        float(cfg["round-timeout"]),
    )
    for reply in replies:
        site = node_sites.get(reply.metadata.src_node_id, str(reply.metadata.src_node_id))
        if not reply.has_content():
            events.write({"type": "site_eval", "site": site, "metrics": None, "error": "no reply"})
            continue
        reported = dict(compat.recorddict_to_evaluateres(reply.content).metrics)
        try:
            # The site's `validation.metrics.model.compute_model_metrics` output, as JSON: the
            # shape `validation.model_gate.model_gate` reads. Non-finite numbers become null.
            metrics = json.loads(str(reported.get("model_metrics", "")), parse_constant=lambda _name: None)
        except ValueError:
            metrics = None
        if not isinstance(metrics, dict) or not metrics:
            events.write({"type": "site_eval", "site": site, "metrics": None, "error": "unreadable metrics"})
            continue
        events.write({"type": "site_eval", "site": site, "metrics": metrics})


def _run(grid: Grid, context: Context, events: EventLog) -> None:
    cfg = dict(context.run_config)
    with open(str(cfg["encoding-path"]), encoding="utf-8") as handle:
        spec = json.load(handle)
    node_sites = _health(grid, cfg, spec, events)
    start = initial_parameters(n_features(spec))
    secure = bool(cfg["secure-aggregation"])
    total_sites, min_sites = int(cfg["num-sites"]), int(cfg["min-sites"])
    base = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=min_sites,
        min_evaluate_clients=0,
        min_available_clients=min_sites,
        initial_parameters=ndarrays_to_parameters(start),
        accept_failures=True,
    )
    clipping = float(cfg["clipping-norm"])
    noise = float(cfg["noise-multiplier"])
    inner: Strategy = base
    accountant: SiteLevelAccountant | None = None
    if clipping > 0:
        wrapper = (
            DifferentialPrivacyClientSideFixedClipping
            if secure
            else DifferentialPrivacyServerSideFixedClipping
        )
        # Noise is calibrated to the quorum (see federation.runtime.accounting).
        inner = wrapper(base, noise_multiplier=noise, clipping_norm=clipping, num_sampled_clients=min_sites)
        accountant = SiteLevelAccountant(noise_multiplier=noise, delta=float(cfg["delta"]))
    elif secure:
        raise StudyFailed("secure aggregation needs a clipping norm (it bounds each site's influence)")
    governed = Governed(
        inner,
        events=events,
        node_sites=node_sites,
        total_sites=total_sites,
        min_sites=min_sites,
        dropout_policy=str(cfg["dropout-policy"]),
        secure=secure,
        clipping_norm=clipping if clipping > 0 else None,
        accountant=accountant,
        reference_shapes=start,
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=int(cfg["num-rounds"]), round_timeout=float(cfg["round-timeout"])),
        strategy=governed,
    )
    if secure:
        num_shares, threshold = secagg_shares(sites=len(node_sites), min_sites=min_sites)
        fit_workflow = SecAggPlusWorkflow(
            num_shares=num_shares,
            reconstruction_threshold=threshold,
            # Values are clipped to this range before quantization: logistic-regression
            # parameters on [0, 1]-scaled features stay far inside it.
            clipping_range=64.0,
            timeout=float(cfg["round-timeout"]),
        )
        workflow = DefaultWorkflow(fit_workflow=fit_workflow)
    else:
        workflow = DefaultWorkflow()
    workflow(grid, legacy)
    if governed.rounds_completed < int(cfg["num-rounds"]):
        raise StudyFailed(f"only {governed.rounds_completed} of {cfg['num-rounds']} rounds completed")
    final = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    parameters = parameters_to_ndarrays(final)
    np.savez(str(cfg["model-path"]), *parameters)
    _evaluate_sites(grid, node_sites, parameters, cfg, events)
    epsilon = accountant.epsilon() if accountant is not None else math.inf
    events.write(
        {
            "type": "run_end",
            "status": "completed",
            "rounds_completed": governed.rounds_completed,
            "epsilon": _finite(epsilon),
            "model_sha256": parameters_sha256(parameters),
        }
    )


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    events = EventLog(str(context.run_config["events-path"]))
    try:
        _run(grid, context, events)
    except Exception as exc:  # noqa: BLE001 - recorded for the supervisor, then re-raised
        events.write({"type": "run_end", "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]})
        raise
