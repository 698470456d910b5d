"""Run one federated study on Flower's deployment engine and supervise it.

`run_study` starts one SuperLink and one SuperNode per site as separate OS processes (all in one
new process group, each tagged with a run marker in its environment), submits the Flower App in
`app/` with `flwr run`, streams the ServerApp's JSON events to `on_event`, and tears everything
down at the end, on cancel (`should_cancel()` returning True), on timeout or on failure: every
process carrying the run's marker (the SuperLink, the SuperNodes, and the SuperExec, ServerApp and
ClientApp processes Flower spawns, some of them in sessions of their own) is terminated by pid,
then killed if it does not exit.

Each SuperNode gets, through `--node-config`, only its own site's files and, in its environment,
only what its data reader needs (`SiteConfig.storage_env`, e.g. SYNTHGATE_DATA_KEY). The SuperLink
and the ServerApp get no data path and no key.

Embedded default (this module): every process on one machine, on loopback, with `--insecure`
(plaintext gRPC/HTTP on 127.0.0.1 only). At scale each hospital runs its own SuperNode on its own
machine; the SuperLink then runs with TLS (`--ssl-certfile/--ssl-keyfile/--ssl-ca-certfile`),
SuperNodes verify it with `--root-certificates`, and node authentication is enabled with
`flower-superlink --enable-supernode-auth` plus a key pair per SuperNode
(`--auth-supernode-private-key`), the public keys registered with `flwr supernode register`
(see docs/federation.md).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

APP_DIR = Path(__file__).resolve().parent / "app"
REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER_ENV = "SYNTHGATE_FEDERATED_RUN"
DROPOUT_POLICIES = ("quorum", "fail")


@dataclass
class SiteConfig:
    name: str
    train_path: str  # absolute path of the site's encrypted training split
    holdout_path: str  # absolute path of the site's encrypted locked holdout
    storage_env: dict[str, str] = field(default_factory=dict)  # e.g. {"SYNTHGATE_DATA_KEY": ...}


@dataclass
class StudyRunConfig:
    run_dir: Path
    sites: list[SiteConfig]
    encoding: dict[str, Any]
    rounds: int
    min_sites: int
    local_epochs: int
    learning_rate: float
    clipping_norm: float | None
    noise_multiplier: float
    delta: float
    secure_aggregation: bool
    dropout_policy: str  # "quorum" | "fail"
    seed: int  # recorded with the run; training is deterministic and DP noise always uses fresh OS randomness
    test_poison: dict[str, float] = field(default_factory=dict)  # site -> scale; SYNTHGATE_ENV=test only


@dataclass
class StudyResult:
    status: str  # "completed" | "cancelled" | "failed"
    rounds_completed: int
    epsilon: float  # the accountant's, per site; inf without DP noise
    delta: float
    parameters: list[np.ndarray]
    model_sha256: str
    site_metrics: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _check(config: StudyRunConfig) -> None:
    names = [site.name for site in config.sites]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError("a study needs two or more sites with distinct names")
    if not 1 <= config.min_sites <= len(names):
        raise ValueError("min_sites must be between 1 and the number of sites")
    if config.dropout_policy not in DROPOUT_POLICIES:
        raise ValueError(f"dropout_policy must be one of {DROPOUT_POLICIES}")
    if config.secure_aggregation and not config.clipping_norm:
        raise ValueError("secure aggregation needs a clipping norm (client-side clipping bounds each site)")
    if config.rounds < 1:
        raise ValueError("rounds must be at least 1")


class _Processes:
    """The run's processes: started in one new process group, found again by the run marker."""

    def __init__(self, marker: str, log_dir: Path) -> None:
        self.marker = marker
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []
        self.pgid: int | None = None

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            env={**env, MARKER_ENV: self.marker},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0 if self.pgid is None else self.pgid,
        )
        log.close()
        if self.pgid is None:
            self.pgid = process.pid
        self.started.append(process)
        return process

    def marked(self) -> list[psutil.Process]:
        """Every live process of this run: the ones started here, their descendants and any
        process whose environment carries the marker (Flower detaches some into new sessions)."""
        found: dict[int, psutil.Process] = {}
        for process in self.started:
            try:
                parent = psutil.Process(process.pid)
                found[parent.pid] = parent
                for child in parent.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        me = os.getuid()
        for candidate in psutil.process_iter(["uids"]):
            try:
                if candidate.info["uids"] is None or candidate.info["uids"].real != me:
                    continue
                if candidate.pid not in found and candidate.environ().get(MARKER_ENV) == self.marker:
                    found[candidate.pid] = candidate
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return [process for process in found.values() if process.pid != os.getpid()]

    def stop(self, grace: float = 5.0) -> None:
        victims = self.marked()
        for process in victims:
            try:
                process.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(victims, timeout=grace)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(alive, timeout=grace)
        for process in self.started:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
        # Anything spawned while we were stopping (a ClientApp for a message in flight).
        for process in self.marked():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue


def _base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYNTHGATE_ENV")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["FLWR_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    # Flower's SuperExec polls for new app tasks every second by default; a round of SecAgg+ is
    # four message exchanges, each starting a ClientApp process, so poll faster.
    env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = "0.2"
    # Two cores must carry a SuperLink, N SuperNodes and their apps: no thread oversubscription.
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return env


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _node_config(site: SiteConfig, encoding_path: Path, poison: float) -> str:
    pairs = {
        "site-name": site.name,
        "train-path": site.train_path,
        "holdout-path": site.holdout_path,
        "encoding-path": str(encoding_path),
    }
    text = " ".join(f"{key}={_toml_string(value)}" for key, value in pairs.items())
    if poison:
        text += f" test-poison-scale={float(poison)!r}"
    return text


def _run_config(config: StudyRunConfig, events_path: Path, model_path: Path, encoding_path: Path) -> str:
    values: dict[str, Any] = {
        "events-path": str(events_path),
        "model-path": str(model_path),
        "encoding-path": str(encoding_path),
        "num-sites": len(config.sites),
        "site-names": json.dumps([site.name for site in config.sites]),
        "min-sites": config.min_sites,
        "num-rounds": config.rounds,
        "local-epochs": config.local_epochs,
        "learning-rate": float(config.learning_rate),
        "clipping-norm": float(config.clipping_norm or 0.0),
        "noise-multiplier": float(config.noise_multiplier),
        "delta": float(config.delta),
        "secure-aggregation": bool(config.secure_aggregation),
        "dropout-policy": config.dropout_policy,
        "seed": int(config.seed),
    }
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f"{key} = {_toml_string(value)}")
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


class _EventTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buffer = ""

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("r", encoding="utf-8") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
            self.offset = handle.tell()
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split("\n")
        return [json.loads(line) for line in complete if line.strip()]


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def run_study(
    config: StudyRunConfig,
    *,
    on_event: Callable[[dict[str, Any]], None],
    should_cancel: Callable[[], bool],
    timeout_s: float = 600,
    poll_s: float = 0.5,
) -> StudyResult:
    """Run the study to its end and return the result; never leaves a process behind."""
    _check(config)
    started_at = time.monotonic()
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for child in ("logs", "homes"):
        (run_dir / child).mkdir(exist_ok=True)
    events_path, model_path = run_dir / "events.jsonl", run_dir / "model.npz"
    for stale in (events_path, model_path):
        stale.unlink(missing_ok=True)
    encoding_path = run_dir / "encoding.json"
    encoding_path.write_text(json.dumps(config.encoding, sort_keys=True), encoding="utf-8")
    run_config_path = run_dir / "run_config.toml"
    run_config_path.write_text(_run_config(config, events_path, model_path, encoding_path), encoding="utf-8")
    poison = config.test_poison if os.environ.get("SYNTHGATE_ENV") == "test" else {}

    processes = _Processes(uuid.uuid4().hex, run_dir / "logs")
    events: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    status, error = "failed", ""
    end_event: dict[str, Any] | None = None
    try:
        port = _free_port()
        link_home = run_dir / "homes" / "superlink"
        link_home.mkdir(exist_ok=True)
        link = processes.start(
            "superlink",
            [
                _bin("flower-superlink"),
                "--insecure",
                "--isolation",
                "subprocess",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            _base_env(link_home),
        )
        if not _wait_port(port, 60):
            raise RuntimeError("the SuperLink did not start listening")
        for index, site in enumerate(config.sites):
            home = run_dir / "homes" / f"site-{index}"
            home.mkdir(exist_ok=True)
            env = {**_base_env(home), **site.storage_env}
            processes.start(
                f"supernode-{index}",
                [
                    _bin("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(_free_port()),
                    "--node-config",
                    _node_config(site, encoding_path, poison.get(site.name, 0.0)),
                ],
                env,
            )
        cli_home = run_dir / "homes" / "cli"
        cli_home.mkdir(exist_ok=True)
        (cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{port}"\ninsecure = true\n',
            encoding="utf-8",
        )
        timings["processes_started_s"] = time.monotonic() - started_at
        submit = processes.start(
            "flwr-run",
            [
                _bin("flwr"),
                "run",
                str(APP_DIR),
                "local",
                "--run-config",
                str(run_config_path),
                "--format",
                "json",
            ],
            _base_env(cli_home),
        )
        tail = _EventTail(events_path)
        deadline = started_at + timeout_s
        while True:
            for event in tail.read():
                if event.get("type") == "run_end":
                    end_event = event
                    continue
                events.append(event)
                mark = (
                    f"{event.get('type')}_{event['round']}_s"
                    if "round" in event
                    else f"{event.get('type')}_s"
                )
                timings.setdefault(mark, time.monotonic() - started_at)
                on_event(event)
            if end_event is not None:
                status = str(end_event["status"])
                error = str(end_event.get("error", ""))
                break
            if should_cancel():
                status, error = "cancelled", "cancelled by request"
                break
            if time.monotonic() > deadline:
                status, error = "failed", f"timed out after {timeout_s:.0f} s"
                break
            if link.poll() is not None:
                status, error = "failed", "the SuperLink exited"
                break
            code = submit.poll()
            if code not in (None, 0):
                status, error = (
                    "failed",
                    f"flwr run failed (exit {code}); see {run_dir / 'logs' / 'flwr-run.log'}",
                )
                break
            time.sleep(poll_s)
    except Exception as exc:  # noqa: BLE001 - any supervisor failure ends the run as failed
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        processes.stop()
        timings["total_s"] = time.monotonic() - started_at
    parameters: list[np.ndarray] = []
    model_sha256 = ""
    if status == "completed" and model_path.exists():
        with np.load(model_path) as stored:
            parameters = [stored[f"arr_{index}"] for index in range(len(stored.files))]
        model_sha256 = str(end_event.get("model_sha256", "")) if end_event else ""
    rounds = [event for event in events if event.get("type") == "round"]
    last_epsilon = rounds[-1].get("epsilon") if rounds else 0.0
    if end_event is not None and status == "completed":
        epsilon = end_event.get("epsilon")
    else:
        epsilon = last_epsilon
    no_dp = not config.clipping_norm or config.noise_multiplier <= 0
    return StudyResult(
        status=status,
        rounds_completed=len(rounds),
        epsilon=math.inf if (no_dp and rounds) or epsilon is None else float(epsilon or 0.0),
        delta=config.delta,
        parameters=parameters,
        model_sha256=model_sha256,
        site_metrics={
            e["site"]: e["metrics"] for e in events if e.get("type") == "site_eval" and e.get("metrics")
        },
        events=events,
        error=error,
        timings=timings,
    )
