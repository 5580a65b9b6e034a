"""MLflow bookkeeping: one experiment per search name, a parent run per search, a child run per trial.

Everything goes through an explicit ``MlflowClient`` and run ids (never the fluent "active run"), so Ray
workers, a resumed driver and final training can all attach to the right run without global state. The
tracking URI defaults to an absolute ``sqlite:///…/mlflow.db`` in the working directory: MLflow 3 refuses the
plain file store, and a relative URI would land in every trial's directory.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # mlflow is imported where a client is made: the CLIs parse arguments without it
    from mlflow.entities import Run as MlflowRun
    from mlflow.tracking import MlflowClient

__all__ = [
    "TrackingError",
    "fetch_run_artifact",
    "resolve_artifact_fields",
    "default_tracking_uri",
    "check_tracking_uri",
    "client_for",
    "is_server",
    "artifact_root",
    "get_or_create_experiment",
    "server_artifacts_note",
    "runs_view_url",
    "share_trials_view",
    "trial_run_names",
    "create_parent_run",
    "child_run",
    "find_child",
    "child_runs",
    "finish_child",
    "log_figure",
    "log_torch",
    "best_child",
    "curves_figure",
    "git_commit",
    "package_versions",
    "flat_params",
    "text_artifact",
]

TRIAL_TAG = "autoinv.trial_id"
ROLE_TAG = "autoinv.role"
SEARCH_RUN_TAG = "autoinv.search_run"  # on each trial: the name of its search's parent run
OUTCOME_TAG = "autoinv.outcome"  # completed | stopped_early | failed
NODES_TAG = "autoinv.nodes"  # on each trial: the Ray node ids it ran on, in order (a retry may move it)
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"  # the UI opens on the runs table


class TrackingError(ValueError):
    """The tracking server or database cannot be used; the message says what to do."""


def default_tracking_uri(directory: str = "") -> str:
    """``sqlite:///<absolute dir>/mlflow.db`` (the working directory by default)."""
    return "sqlite:///" + os.path.join(os.path.abspath(directory or os.getcwd()), "mlflow.db")


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when an ``http(s)://`` tracking server does not answer or a URI is a file store."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingError(
                f"tracking server {uri} is unreachable ({reason}); start it (mlflow server --host 127.0.0.1) "
                "or pass another --tracking-uri"
            ) from None
    elif not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql", "databricks")):
        raise TrackingError(
            f"tracking URI {uri!r} is not a database or server; MLflow 3 refuses file stores: "
            f"use {default_tracking_uri()} or http://HOST:5000"
        )


def fetch_run_artifact(uri: str, default_file: str, dst_dir: str, tracking_uri: str = "") -> str:
    """Download ``runs:/RUN_ID[/PATH]`` into ``dst_dir`` and return the local file's path.

    Args:
        uri: ``runs:/RUN_ID`` (then ``default_file`` is fetched) or ``runs:/RUN_ID/PATH``.
        default_file: Artifact to fetch when the URI names only the run, e.g. ``"mixer.pt"``.
        dst_dir: An existing local folder (the caller owns it, e.g. a ``tempfile.TemporaryDirectory``).
        tracking_uri: Where the run lives; default ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    Raises:
        TrackingError: one line, when the run or the artifact cannot be fetched.
    """
    run_id, _, path = uri[len("runs:/") :].partition("/")
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    try:
        return client_for(tracking_uri).download_artifacts(run_id, path or default_file, dst_dir)
    except Exception as error:  # MlflowException, OSError, sqlalchemy errors: all the same user error
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrackingError(f"cannot fetch {uri!r} from {tracking_uri}: {first}") from None


def resolve_artifact_fields(
    artifact_fields: dict[str, str], values: dict[str, Any], folder: str, tracking_uri: str = ""
) -> dict[str, Any]:
    """Replace each ``runs:/RUN_ID[/PATH]`` reference in a method's artifact fields by a local file under ``folder``.

    A method declares ``ARTIFACT_FIELDS = {artifact name: config field}`` and only ever loads local paths; the
    search, export and train layers call this first, so every method reuses a searched artifact the same way.
    Downloads land in ``folder/artifacts/<run id>/<path>`` and are reused when already there (trials of one
    search share them); each is written to a private folder first and moved into place, so concurrent trials
    never read a half-written file.

    Args:
        artifact_fields: The method's ``ARTIFACT_FIELDS``; ``runs:/RUN_ID`` alone fetches ``<artifact name>.pt``.
        values: Config values (not modified).
        folder: Local folder for downloads (created when needed).
        tracking_uri: Where the runs live; default ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    Returns:
        A copy of ``values`` with every ``runs:/`` reference replaced by a local path.

    Raises:
        TrackingError: one line naming the config field, when a run or its artifact cannot be fetched.
    """
    resolved = dict(values)
    for name, field in artifact_fields.items():
        reference = values.get(field)
        if not (isinstance(reference, str) and reference.startswith("runs:/")):
            continue
        run_id, _, path = reference[len("runs:/") :].partition("/")
        path = path or f"{name}.pt"
        target = os.path.join(folder, "artifacts", run_id, *path.split("/"))
        if not os.path.isfile(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as private:
                try:
                    local = fetch_run_artifact(f"runs:/{run_id}/{path}", path, private, tracking_uri)
                except TrackingError as error:
                    raise TrackingError(f"{field}: {error}") from None
                os.replace(local, target)
        resolved[field] = target
    return resolved


def client_for(uri: str) -> MlflowClient:
    """A client bound to ``uri`` (no global state touched)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def is_server(uri: str) -> bool:
    """Whether ``uri`` is a tracking server (``http(s)://``) rather than a database the process opens itself."""
    return uri.startswith(("http://", "https://"))


def artifact_root(tracking_uri: str, directory: str = "") -> str:
    """Where new experiments keep artifacts: ``<directory or cwd>/mlartifacts``, or ``""`` for a tracking server.

    ``""`` lets the server choose its own store (``mlflow-artifacts:/…``, proxied with ``--serve-artifacts``). A
    server's experiments must not point at a folder of the driver's disk: trials on other nodes would write their
    figures there, and a UI on another machine could show none of them.
    """
    if is_server(tracking_uri):
        return ""
    return os.path.join(os.path.abspath(directory or os.getcwd()), "mlartifacts")


def get_or_create_experiment(client: MlflowClient, name: str, artifact_root: str = "") -> str:
    """The id of experiment ``name``, created with an absolute artifact location when missing (race-safe).

    Every experiment is tagged as a training experiment (``KIND_TAG``): without it MLflow 3's UI opens on its
    GenAI overview (traces, token usage) instead of the runs table.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(KIND_TAG) != TRAINING_KIND:
            client.set_experiment_tag(experiment.experiment_id, KIND_TAG, TRAINING_KIND)
        return experiment.experiment_id
    location = None
    if artifact_root and "://" not in artifact_root:
        location = "file://" + os.path.join(os.path.abspath(artifact_root), name)
    try:
        return client.create_experiment(name, artifact_location=location, tags={KIND_TAG: TRAINING_KIND})
    except Exception:  # another process created it between our look-up and create: use theirs
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def server_artifacts_note(client: MlflowClient, experiment_id: str, tracking_uri: str) -> str:
    """A warning when a server's experiment keeps its artifacts in a folder rather than on the server; else ``""``.

    Experiments made by earlier versions on a server point at ``file://<the driver's cwd>/mlartifacts``; an
    experiment's artifact location cannot change, so the user needs another name.
    """
    location = client.get_experiment(experiment_id).artifact_location
    if not is_server(tracking_uri) or not location.startswith(("file:", "/")):
        return ""
    return (
        f"note: experiment {experiment_id} keeps artifacts in {location}, not on the server: figures of trials on "
        "other machines land on their disks; pass a new --experiment name to keep them on the server"
    )


def runs_view_url(tracking_uri: str, experiment_id: str, ui: str = "http://127.0.0.1:5000", view: str = "") -> str:
    """The UI page of an experiment's runs table: on the server itself, or on a local ``mlflow ui`` at ``ui``.

    ``view`` names a shared view (:func:`share_trials_view`) the page opens on.
    """
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else ui
    return f"{base}/#/experiments/{experiment_id}/runs" + (f"?viewStateShareKey={view}" if view else "")


def share_trials_view(
    client: MlflowClient, experiment_id: str, search_run: str, metric: str, mode: str, columns: list[str]
) -> str:
    """Store a view of one search's trials in the experiment and return its key (for :func:`runs_view_url`).

    MLflow's UI nests child runs under their parent, collapsed, and shows no metric or parameter columns; a
    shared view (an experiment tag the UI reads) can open on the search's trials, grouped under one expanded
    row, sorted by ``metric`` best first, with ``metric`` and ``columns`` (parameter names) shown. The UI never
    restores expanded parents from a shared view, hence the grouping by the trials' ``SEARCH_RUN_TAG``.
    """
    state = {
        "searchFilter": f"tags.`{SEARCH_RUN_TAG}` = '{search_run}'",
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": mode == "min",
        "groupBy": {"aggregateFunction": mode, "groupByKeys": [{"mode": "tag", "groupByData": SEARCH_RUN_TAG}]},
        "groupsExpanded": {f"tag.{SEARCH_RUN_TAG}.{search_run}": True},
        "selectedColumns": [f"metrics.`{metric}`", *(f"params.`{name}`" for name in columns)],
    }
    client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{search_run}", json.dumps(state))
    return search_run


def create_parent_run(
    client: MlflowClient, experiment_id: str, name: str, tags: dict[str, str], params: dict[str, Any]
) -> str:
    """Create the search's parent run with its provenance; return its id."""
    run = client.create_run(experiment_id, run_name=name, tags={ROLE_TAG: "search", **tags})
    _log_params(client, run.info.run_id, params)
    return run.info.run_id


def find_child(client: MlflowClient, experiment_id: str, parent_id: str, trial_id: str) -> MlflowRun | None:
    """The child run of ``parent_id`` tagged with Ray's ``trial_id``, if it exists."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'",
        max_results=1,
    )
    return runs[0] if runs else None


def child_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    trial_id: str,
    name: str,
    params: dict[str, Any],
    tags: dict[str, str],
    node_id: str = "",
) -> str:
    """The run id of the trial's child run: reattached when the trial resumes, created otherwise.

    Reattaching instead of creating keeps a resumed or retried trial to one child run; ``tags`` then describe the
    new attempt (its node, its GPUs), and ``node_id`` joins the run's ``autoinv.nodes``, where it ran in order.
    """
    existing = find_child(client, experiment_id, parent_id, trial_id)
    nodes = [n for n in (existing.data.tags.get(NODES_TAG, "") if existing else "").split(",") if n]
    if node_id and node_id not in nodes:
        tags = {**tags, NODES_TAG: ",".join([*nodes, node_id])}
    if existing is not None:
        client.update_run(existing.info.run_id, status="RUNNING")
        set_tags(client, existing.info.run_id, tags)
        return existing.info.run_id
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={"mlflow.parentRunId": parent_id, TRIAL_TAG: trial_id, ROLE_TAG: "trial", **tags},
    )
    _log_params(client, run.info.run_id, params)
    return run.info.run_id


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    """Set several tags of a run in one call."""
    from mlflow.entities import RunTag

    if tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list[MlflowRun]:
    """All child runs of a search."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=5000
    )


def finish_child(client: MlflowClient, run_id: str, outcome: str, epochs_done: int, error: str = "") -> None:
    """Close a child run: ``completed`` → FINISHED, ``stopped_early`` → KILLED (with the epoch), ``failed`` → FAILED."""
    tags = {OUTCOME_TAG: outcome, "autoinv.epochs_done": str(epochs_done)}
    if outcome == "stopped_early":
        tags["autoinv.stopped_at_epoch"] = str(epochs_done)
    if error:
        tags["autoinv.error"] = error[:7000]
    set_tags(client, run_id, tags)
    status = {"completed": "FINISHED", "stopped_early": "KILLED", "failed": "FAILED"}[outcome]
    client.set_terminated(run_id, status=status)


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics as floats without NaN and infinities (MLflow refuses or mis-plots them)."""
    return {k: float(v) for k, v in metrics.items() if v == v and abs(float(v)) != float("inf")}


def log_epoch(
    client: MlflowClient, run_id: str, step: int, metrics: dict[str, float], tags: dict[str, str] | None = None
) -> None:
    """Log one epoch's finite metrics at ``step`` (and ``tags`` in the same call)."""
    log_epochs(client, run_id, {step: metrics}, tags)


def log_epochs(
    client: MlflowClient, run_id: str, epochs: dict[int, dict[str, float]], tags: dict[str, str] | None = None
) -> None:
    """Log several epochs' finite metrics, each at its step, and ``tags``, in one call (MLflow splits big batches)."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(k, v, now, step) for step, metrics in epochs.items() for k, v in finite_metrics(metrics).items()
        ],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )


def logged_steps(client: MlflowClient, run_id: str, key: str) -> set[int]:
    """The steps at which ``key`` has a value in ``run_id``'s history."""
    return {metric.step for metric in client.get_metric_history(run_id, key)}


def log_figure(client: MlflowClient, run_id: str, fig: Any, artifact_file: str) -> None:
    """Save a matplotlib figure as a PNG artifact of ``run_id`` and close it."""
    import matplotlib.pyplot as plt

    client.log_figure(run_id, fig, artifact_file)
    plt.close(fig)


def log_torch(client: MlflowClient, run_id: str, obj: dict[str, Any], artifact_file: str) -> None:
    """``torch.save`` a dict of weights and settings as an artifact (e.g. ``mixer.pt``)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, os.path.basename(artifact_file))
        torch.save(obj, path)
        client.log_artifact(run_id, path, os.path.dirname(artifact_file) or None)


def best_child(client: MlflowClient, experiment_id: str, parent_id: str, metric: str, mode: str) -> MlflowRun | None:
    """The best child that completed every epoch (early-stopped trials never win on a truncated score)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.`{OUTCOME_TAG}` = 'completed'",
        order_by=[f"metrics.`{metric}` {'DESC' if mode == 'max' else 'ASC'}"],
        max_results=1000,
    )
    runs = [run for run in runs if metric in run.data.metrics]
    return runs[0] if runs else None


def trial_run_names(configs: list[dict[str, Any]], base: dict[str, Any], most: int = 3) -> list[str]:
    """Readable child-run names: ``#3 lr=0.031 augment=randaugment mix_k=3``, the trial's number and its values.

    Each name shows the ``most`` searched values in which that trial differs most from the others: every searched
    key is put on a [0, 1] scale over the trials (logarithmic for positive numbers spanning more than 10x,
    0/1 for "not the most common choice" otherwise) and the keys farthest from the median come first.

    Args:
        configs: Each trial's full config, in trial order (the number is the position, from 1).
        base: The search's base config; keys whose value equals it in every trial are not searched.
        most: How many values a name shows.
    """
    keys = sorted({k for c in configs for k, v in c.items() if k not in base or base[k] != v})
    scales: dict[str, list[float]] = {}
    for key in keys:
        values = [c.get(key) for c in configs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and len(set(values)) > 1:
            low, high = min(values), max(values)
            if low > 0 and high / low > 10:
                values, low, high = [math.log(v) for v in values], math.log(low), math.log(high)
            scales[key] = [(v - low) / (high - low) for v in values]
        else:
            common = max(set(map(repr, values)), key=list(map(repr, values)).count)
            scales[key] = [0.0 if repr(v) == common else 1.0 for v in values]
    medians = {key: sorted(column)[len(column) // 2] for key, column in scales.items()}
    names = []
    for i, config in enumerate(configs):
        distance = {key: abs(scales[key][i] - medians[key]) for key in keys}
        shown = sorted(keys, key=lambda k: (-distance[k], k))[:most]
        names.append(" ".join([f"#{i + 1}", *(f"{k}={short_value(config.get(k))}" for k in shown)]))
    return names


def short_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def curves_figure(client: MlflowClient, runs: list[MlflowRun], metric: str, best_id: str = "") -> Any:
    """One figure with every trial's ``metric`` against epoch; the best trial drawn thick."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        if not history:
            continue
        best = run.info.run_id == best_id
        outcome = run.data.tags.get(OUTCOME_TAG, "running")
        ax.plot(
            [m.step + 1 for m in history],
            [m.value for m in history],
            lw=2.5 if best else 1.0,
            alpha=1.0 if best else 0.6,
            ls="-" if outcome == "completed" else "--",
            label=f"{run.info.run_name} (best)" if best else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of every trial (dashed: stopped early or failed)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


def context_tags(commit: str) -> dict[str, str]:
    """MLflow's own run-context tags (``mlflow.user``, ``mlflow.source.*``), with ``commit`` (from :func:`git_commit`).

    ``MlflowClient.create_run`` sets none of these (only the fluent API does), so the UI's User and Source columns
    stay empty without them.
    """
    from mlflow.tracking.context.registry import resolve_tags

    tags = dict(resolve_tags())
    if commit != "unknown":
        tags.setdefault("mlflow.source.git.commit", commit.removesuffix("-dirty"))
    return tags


def git_commit(directory: str = "") -> str:
    """The git commit of ``directory`` (or of the autoinv package), with ``-dirty`` when it has changes."""
    where = directory or os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the stack, for provenance."""
    out = {}
    for name in ("autoinv", "torch", "torchvision", "ray", "optuna", "mlflow", "kornia", "normflows", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Params as MLflow strings (values longer than MLflow's limit are cut)."""
    return {f"{prefix}{k}": str(v)[:6000] for k, v in values.items()}


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in flat_params(params).items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=items[start : start + 100])


def text_artifact(client: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
    """Log ``text`` as a file artifact."""
    client.log_text(run_id, text, artifact_file)
