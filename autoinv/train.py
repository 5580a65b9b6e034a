"""``python -m autoinv.train best.yaml``: final training from an exported config, without Ray.

Trains once per seed, logs every epoch, the test metrics and the trained model (``mlflow.pytorch``) to the MLflow
experiment ``<name>-final`` (a parent run with one child per seed), and prints mean ± std over the seeds.

Example:
    python -m autoinv.train best.yaml --seeds 0 1 2
    python -m autoinv.train best.yaml --epochs 5 --set batch_size=64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any

import yaml

from autoinv import tracking
from autoinv.config import ConfigError, build_config, parse_overrides, to_dict
from autoinv.methods import METHODS, get_method

__all__ = ["main", "train_from_document", "TrainError", "FinalRun"]

KNOWN_KEYS = {"method", "search", "config", "provenance", "metric", "value"}


class TrainError(ValueError):
    """A user-facing problem with the YAML file or the options."""


class FinalRun:
    """The :class:`autoinv.loop.Run` of final training: MLflow directly, with a progress bar over epochs."""

    def __init__(self, client: Any, run_id: str, epochs: int, label: str, cache_dir: str) -> None:
        from tqdm.auto import tqdm

        self.client, self.run_id, self.cache_dir = client, run_id, cache_dir
        self.bar = tqdm(total=epochs, desc=label, unit="epoch", file=sys.stderr)

    def report(self, epoch: int, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
        tracking.log_epoch(self.client, self.run_id, epoch, metrics)
        shown = {
            k.split("/")[-1] if k.startswith("val/") else k: v
            for k, v in metrics.items()
            if k in ("val/acc", "train/loss")
        }
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
        self.bar.update(1)

    def resume(self) -> None:
        return None

    def figure(self, name: str, fig: Any, epoch: int) -> None:
        tracking.log_figure(self.client, self.run_id, fig, f"figures/{name}/epoch_{epoch:03d}.png")

    def artifact(self, name: str, obj: dict[str, Any]) -> None:
        tracking.log_torch(self.client, self.run_id, obj, f"{name}.pt")

    def save_model(self, model: Any) -> None:
        from importlib.metadata import version

        import mlflow

        self.bar.close()
        mlflow.set_tracking_uri(self.client.tracking_uri)
        with mlflow.start_run(run_id=self.run_id):
            # Pickle, not MLflow's default torch.export graph: it takes any nn.Module and needs no input example.
            # Explicit requirements skip MLflow's slow import-scanning inference.
            mlflow.pytorch.log_model(
                model.cpu(),
                name="model",
                serialization_format="pickle",
                pip_requirements=[f"torch=={version('torch')}", f"autoinv=={version('autoinv')}"],
            )


def load_document(path: str) -> dict[str, Any]:
    """Read and check an exported YAML (``safe_load``; unknown top-level keys are an error)."""
    if not os.path.isfile(path):
        raise TrainError(f"{path!r} does not exist; write one with python -m autoinv.export NAME -o {path}")
    with open(path) as f:
        try:
            document = yaml.safe_load(f)
        except yaml.YAMLError as error:
            raise TrainError(f"{path!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict) or "method" not in document or "config" not in document:
        raise TrainError(f"{path!r} needs top-level 'method' and 'config' keys (as written by autoinv.export)")
    unknown = sorted(set(document) - KNOWN_KEYS)
    if unknown:
        raise TrainError(
            f"{path!r} has unknown top-level keys {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    if document["method"] not in METHODS:  # a user's own method: importable from here (the search file's folder)
        try:
            get_method(document["method"])
        except KeyError:
            raise TrainError(
                f"{path!r}: unknown method {document['method']!r}; known: {', '.join(sorted(METHODS))} "
                "(or an importable module path)"
            ) from None
    return document


def train_from_document(
    document: dict[str, Any],
    base_dir: str,
    seeds: list[int],
    epochs: int | None,
    overrides: dict[str, str],
    tracking_uri: str,
    experiment: str,
) -> list[dict[str, float]]:
    """Train the document's config once per seed; return each seed's final metrics."""
    method_name = document["method"]
    method = get_method(method_name)
    values = dict(document["config"])
    fields = getattr(method, "ARTIFACT_FIELDS", {})
    for field in fields.values():  # paths written by export are relative to the YAML
        if values.get(field) and not os.path.isabs(str(values[field])) and "://" not in str(values[field]):
            values[field] = os.path.join(base_dir, str(values[field]))
    values.update(overrides)
    values["eval_test"] = True
    if epochs is not None:
        values["epochs"] = epochs
    cache_dir = os.path.join(os.path.abspath("autoinv_results"), "cache")
    values = tracking.resolve_artifact_fields(fields, values, cache_dir, tracking_uri)  # runs:/ → local files
    configs = [build_config(method.Config, {**values, "seed": seed}, method_name) for seed in seeds]

    client = tracking.client_for(tracking_uri)
    experiment_id = tracking.get_or_create_experiment(
        client, experiment, artifact_root=tracking.artifact_root(tracking_uri)
    )
    provenance = document.get("provenance", {})
    parent_id = tracking.create_parent_run(
        client,
        experiment_id,
        f"{method_name}-final",
        tags={
            "autoinv.method": method_name,
            "autoinv.source_run_id": str(provenance.get("run_id", "")),
            "autoinv.git_commit": tracking.git_commit(),
        },
        params={"seeds": " ".join(map(str, seeds))},
    )
    results = []
    for cfg in configs:
        run_id = tracking.child_run(
            client,
            experiment_id,
            parent_id,
            f"seed-{cfg.seed}",
            f"seed {cfg.seed}",
            to_dict(cfg),
            {"autoinv.method": method_name},
        )
        run = FinalRun(client, run_id, cfg.epochs, f"{method_name} seed {cfg.seed}", cache_dir)
        try:
            metrics = method.fit(cfg, run)
        except BaseException:
            tracking.finish_child(client, run_id, "failed", 0)
            client.set_terminated(parent_id, status="FAILED")
            raise
        tracking.finish_child(client, run_id, "completed", cfg.epochs)
        results.append(metrics)
    for key in ("test/acc", "val/acc"):
        values_ = [m[key] for m in results if key in m]
        if values_:
            client.log_metric(parent_id, f"{key}_mean", statistics.fmean(values_))
            client.log_metric(parent_id, f"{key}_std", statistics.stdev(values_) if len(values_) > 1 else 0.0)
    client.set_terminated(parent_id, status="FINISHED")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; user errors print one line and return exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m autoinv.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML written by python -m autoinv.export")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to train (default 0)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    parser.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--experiment", default="", help="MLflow experiment (default <search name>-final)")
    args = parser.parse_args(argv)
    uri = args.tracking_uri or tracking.default_tracking_uri()
    try:
        document = load_document(args.config)
        tracking.check_tracking_uri(uri)
        experiment = args.experiment or f"{document.get('search', document['method'])}-final"
        base_dir = os.path.dirname(os.path.abspath(args.config))
        results = train_from_document(
            document, base_dir, args.seeds, args.epochs, parse_overrides(args.set), uri, experiment
        )
    except (TrainError, ConfigError, tracking.TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        if type(error) is not ValueError and type(error).__name__.endswith("Error"):
            print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    print(f"{document['method']} over seeds {' '.join(map(str, args.seeds))}:")
    for key in ("test/acc", "val/acc", "test/loss"):
        values = [m[key] for m in results if key in m]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"  {key}: {statistics.fmean(values):.4f} ± {std:.4f}")
    look = f"open {uri}" if tracking.is_server(uri) else f"mlflow ui --backend-store-uri {uri}"
    print(f"logged to MLflow experiment {experiment!r}: {look}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
