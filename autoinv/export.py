"""``python -m autoinv.export NAME``: the best trial of a search → a YAML file that ``autoinv.train`` trains from.

The YAML holds the method, its full Config, and provenance (parent and trial run ids, metric, git commit,
package versions). Learned modules the trial saved (a TransformMix mixer, an orbit model) are downloaded beside
the YAML and wired into the config field the method names in ``ARTIFACT_FIELDS``, so final training reuses
what the search learned instead of learning it again.

Example:
    python -m autoinv.export transformmix -o best.yaml
    python -m autoinv.export transformmix --run-id 3f2a... -o trial.yaml
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
from typing import Any

import yaml

from autoinv import tracking
from autoinv.config import ConfigError, build_config, to_dict
from autoinv.methods import get_method

__all__ = ["main", "export_run", "ExportError"]


class ExportError(ValueError):
    """A user-facing export problem (no such search, no finished trial)."""


def _find_run(client: Any, name: str, run_id: str) -> tuple[Any, Any]:
    """(parent run, trial run) for the latest search of experiment ``name``, or for the chosen ``run_id``."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ExportError(f"no search named {name!r} in this tracking store; run python -m autoinv.search {name} first")
    if run_id:
        try:
            trial = client.get_run(run_id)
        except Exception:
            raise ExportError(f"run {run_id!r} does not exist in this tracking store") from None
        parent_id = trial.data.tags.get("mlflow.parentRunId", "")
        return (client.get_run(parent_id) if parent_id else trial), trial
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{tracking.ROLE_TAG}` = 'search'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise ExportError(f"experiment {name!r} holds no search run; run python -m autoinv.search {name} first")
    parent = parents[0]
    tags = parent.data.tags
    best = tracking.best_child(
        client, experiment.experiment_id, parent.info.run_id, tags["autoinv.metric"], tags["autoinv.mode"]
    )
    if best is None:
        raise ExportError(
            f"search {parent.info.run_name!r} has no trial that finished every epoch; "
            "resume it (--resume) or run a longer search, or pick a run with --run-id"
        )
    return parent, best


def export_run(tracking_uri: str, name: str, output: str, run_id: str = "") -> dict[str, Any]:
    """Write the YAML for the best (or chosen) trial of search ``name``; return the document written."""
    client = tracking.client_for(tracking_uri)
    parent, trial = _find_run(client, name, run_id)
    method_name = trial.data.tags.get("autoinv.method") or parent.data.tags.get("autoinv.method", "")
    try:  # a registered name, or a user's own module importable here (run export from the search file's folder)
        method = get_method(method_name)
    except KeyError:
        raise ExportError(
            f"run {trial.info.run_id} has no known or importable method (autoinv.method={method_name!r})"
        ) from None
    values = {k: v for k, v in trial.data.params.items()}
    try:
        cfg = build_config(method.Config, values, method_name)
    except ConfigError as error:
        raise ExportError(f"run {trial.info.run_id} does not describe a valid {method_name} config: {error}") from None
    config = to_dict(cfg)
    metric = parent.data.tags.get("autoinv.metric", "val/acc")
    out_dir = os.path.dirname(os.path.abspath(output))
    stem = os.path.splitext(os.path.basename(output))[0]
    artifacts = _download_artifacts(client, trial.info.run_id, getattr(method, "ARTIFACT_FIELDS", {}), out_dir, stem)
    config.update(artifacts)
    document = {
        "method": method_name,
        "search": parent.data.tags.get("autoinv.search", name),
        "config": config,
        "provenance": {
            "experiment": name,
            "parent_run_id": parent.info.run_id,
            "run_id": trial.info.run_id,
            "run_name": trial.info.run_name,
            "metric": metric,
            "value": trial.data.metrics.get(metric),
            "git_commit": parent.data.tags.get("autoinv.git_commit", "unknown"),
            "storage": parent.data.tags.get("autoinv.storage", ""),  # the search's checkpoints (a folder or a URI)
            "versions": {k[len("version.") :]: v for k, v in parent.data.tags.items() if k.startswith("version.")},
            "tracking_uri": tracking_uri,
            "exported_at": datetime.datetime.now().isoformat(timespec="seconds"),
        },
    }
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(document, f, sort_keys=False)
    os.replace(tmp, output)  # never leave a half-written YAML behind
    return document


def _download_artifacts(client: Any, run_id: str, fields: dict[str, str], out_dir: str, stem: str) -> dict[str, str]:
    """Download ``<name>.pt`` artifacts the method maps to config fields; return {field: path relative to out_dir}."""
    found = {info.path for info in client.list_artifacts(run_id)}
    wired = {}
    for name, field in fields.items():
        if f"{name}.pt" not in found:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, f"{name}.pt", tmp)
            target = f"{stem}.{name}.pt"
            shutil.copyfile(local, os.path.join(out_dir, target))
        wired[field] = target
    return wired


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; user errors print one line and return exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m autoinv.export", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="search (MLflow experiment) name")
    parser.add_argument("--run-id", default="", help="export this trial run instead of the best of the latest search")
    parser.add_argument("-o", "--output", default="best.yaml", help="YAML file to write (default best.yaml)")
    parser.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default sqlite:///<cwd>/mlflow.db)")
    args = parser.parse_args(argv)
    uri = args.tracking_uri or tracking.default_tracking_uri()
    try:
        tracking.check_tracking_uri(uri)
        if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///") :]):
            raise ExportError(f"no tracking database at {uri}; run a search first or pass --tracking-uri")
        document = export_run(uri, args.name, args.output, args.run_id)
    except (ExportError, tracking.TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prov = document["provenance"]
    value = f"{prov['value']:.4f}" if isinstance(prov["value"], float) else prov["value"]
    print(f"wrote {args.output}: {document['method']} from run {prov['run_id']} ({prov['metric']} = {value})")
    print(f"train: python -m autoinv.train {args.output} --seeds 0 1 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
