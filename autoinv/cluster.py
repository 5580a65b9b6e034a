"""The search on a Ray cluster: users' own methods, the same code on every node, teachers as Ray tasks, node checks.

Imported by ``autoinv.search``; Ray is imported inside the functions that need it, so a search's argument and
search-file checks stay free of it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import site
import socket
import sys
import sysconfig
import time
import uuid
from types import ModuleType
from typing import Any

from autoinv.methods import METHODS, get_method

__all__ = ["ClusterError", "import_method", "runtime_env", "code_digest", "check_nodes", "train_teachers"]

PROBE_TIMEOUT_S = 180  # a fresh node sets up the shipped runtime environment before it answers


class ClusterError(ValueError):
    """A user-facing problem with a method module or with the cluster's nodes."""


# ---------------------------------------------------------------------------------------------------------------------
# Users' own methods


def import_method(name: str, search_file: str | None = None) -> ModuleType:
    """The method module a search file's ``METHOD`` names, imported now.

    In this order: a method of autoinv's registry; a module or package beside the search file (``my_method`` →
    ``my_method.py`` or ``my_method/``; ``mypkg.mine`` → ``mypkg/mine.py``); any importable module path. The
    module is registered under ``name`` in ``sys.modules``, so :func:`autoinv.methods.get_method` finds it, and
    :func:`runtime_env` ships it to the Ray workers under the same name.

    Raises:
        ClusterError: the name resolves to nothing, the module does not import or lacks ``Config`` / ``fit``.
    """
    if isinstance(name, str) and name in METHODS:
        return get_method(name)
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        raise ClusterError(f"METHOD {name!r} is not a method name or a module path like mypkg.my_method")
    folder = os.path.dirname(os.path.realpath(search_file)) if search_file else ""
    top = name.split(".")[0]
    beside = folder and (os.path.isfile(os.path.join(folder, top + ".py")) or os.path.isdir(os.path.join(folder, top)))
    if beside and top not in sys.modules:
        sys.path.insert(0, folder)  # only while importing: later imports must not find other files of that folder
        try:
            module = _import(name, folder)
        finally:
            sys.path.remove(folder)
    else:
        module = _import(name, folder)
    missing = [attr for attr in ("Config", "fit") if not hasattr(module, attr)]
    if missing:
        raise ClusterError(
            f"method module {name!r} ({module.__file__}) lacks {' and '.join(missing)}; a method defines a Config "
            "dataclass and fit(cfg, run), like autoinv/methods/erm.py"
        )
    return module


def _import(name: str, folder: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            where = f"no {name.split('.')[0]}.py beside the search file in {folder}, " if folder else ""
            raise ClusterError(
                f"METHOD {name!r} is not one of autoinv's methods ({', '.join(sorted(METHODS))}), {where}"
                "and no importable module"
            ) from None
        raise ClusterError(f"method module {name!r} does not import: {error}") from None
    except Exception as error:  # a user's module can fail in any way; report it in one line
        first = (str(error).strip().splitlines() or [""])[0]
        raise ClusterError(f"method module {name!r} does not import: {type(error).__name__}: {first}") from None


# ---------------------------------------------------------------------------------------------------------------------
# The same code on every node


def runtime_env(method: str, joining: bool) -> dict[str, Any] | None:
    """The Ray ``runtime_env`` of the search's job: what every worker must import as the driver does.

    A user's own method module (unless it is an installed package) always travels through ``py_modules``: trials
    run in worker processes that do not see the search file's folder. Joining a cluster (``--address``) also
    ships the driver's ``autoinv`` package, which then shadows whatever version a node has installed. The search
    file itself stays on the driver: Tune keeps the searcher (and with it ``space``) there, and trials get plain
    config dicts.
    """
    modules = []
    if joining:
        import autoinv

        modules.append(os.path.dirname(autoinv.__file__))
    if method not in METHODS:
        top = sys.modules[method.split(".")[0]]
        path = os.path.dirname(top.__file__) if hasattr(top, "__path__") else top.__file__
        if not _installed(path):
            modules.append(path)
    if not modules:
        return None
    return {"py_modules": modules, "excludes": ["__pycache__", "*.pyc"]}


def _installed(path: str) -> bool:
    """Whether ``path`` lies in an environment's site-packages (there, nodes install it like torch)."""
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return any(os.path.realpath(path).startswith(os.path.realpath(root) + os.sep) for root in roots)


def code_digest() -> str:
    """A hash of the Python sources of the ``autoinv`` package this process imports."""
    import autoinv

    root = os.path.dirname(autoinv.__file__)
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def _probe(marker: str) -> dict[str, Any]:
    """On one node: which autoinv it imports and whether it sees the driver's marker file."""
    import ray

    import autoinv

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "digest": code_digest(),
        "autoinv": os.path.dirname(autoinv.__file__),
        "sees_marker": bool(marker) and os.path.exists(marker),
    }


def check_nodes(storage: str) -> None:
    """Before the first trial: every node that can run work imports the driver's autoinv and sees local storage.

    A task pinned to each alive node with CPUs reports its autoinv's source hash and, when ``storage`` is a local
    folder and there are several such nodes, whether it sees a marker file the driver has just written there.

    Raises:
        ClusterError: a node runs other code or does not see the storage folder (one line naming the node).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    local = "://" not in storage
    marker = os.path.join(storage, f".autoinv-shared-{uuid.uuid4().hex[:12]}") if local and len(nodes) > 1 else ""
    created = bool(marker) and not os.path.exists(storage)
    if marker:
        os.makedirs(storage, exist_ok=True)
        with open(marker, "w") as f:
            f.write("written by the search driver to check every node sees this folder\n")
    try:
        probe = ray.remote(num_cpus=0)(_probe)
        refs = [
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(marker)
            for n in nodes
        ]
        try:
            answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"not every Ray node answered within {PROBE_TIMEOUT_S} s; check `ray status`") from None
        problem = node_problem(answers, code_digest(), storage if marker else "")
    finally:
        if marker:
            os.remove(marker)
            if created:
                os.rmdir(storage)  # a refused search leaves nothing behind
    if problem:
        raise ClusterError(problem)


def node_problem(answers: list[dict[str, Any]], digest: str, storage: str) -> str:
    """The first problem in the nodes' probe answers, as one line; empty when there is none.

    Args:
        answers: What :func:`_probe` returned on each node.
        digest: The driver's :func:`code_digest`.
        storage: The local storage folder that every node must see; empty when not checked.
    """
    for answer in answers:
        node = f"node {answer['host']} ({answer['node_id'][:12]})"
        if answer["digest"] != digest:
            return (
                f"{node} imports another autoinv ({answer['autoinv']}) than the driver; install the driver's "
                "version there or join with --address so the search ships it"
            )
        if storage and not answer["sees_marker"]:
            return (
                f"--storage {storage} is a local folder that {node} does not see; on a cluster of several nodes "
                "give object storage (s3://bucket/path, gs://...) or a folder on a mount every node shares (NFS)"
            )
    return ""


# ---------------------------------------------------------------------------------------------------------------------
# Teachers as Ray tasks


def _train_teacher(spec: Any, cache_dir: str, threads: int) -> dict[str, Any]:
    """In a Ray worker: train ``spec`` into the cache (through :func:`autoinv.teachers.load_or_train`)."""
    import ray
    import torch

    from autoinv import teachers

    torch.set_num_threads(threads)  # a reused worker keeps the thread count its first task imported torch with
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray hides the GPUs a task did not ask for
    teachers.load_or_train(spec, cache_dir, device=device)
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": device,
        "threads": torch.get_num_threads(),
        "seconds": round(time.time() - started, 1),
    }


def train_teachers(specs: list[Any], cache_dir: str, gpus: float, cpus: float) -> dict[str, str]:
    """Train every teacher that is not cached yet, each in a Ray task on whichever node has the resources.

    The task writes into the same cache the trials read (``cache_dir``, which must be shared storage on a
    cluster); a teacher found there starts no task. A teacher given as a checkpoint is only checked, here.

    Args:
        specs: The :class:`autoinv.teachers.TeacherSpec` list of the base config.
        cache_dir: The search's cache folder.
        gpus: GPUs the search may use; a teacher task asks for one (or that fraction) when it is > 0.
        cpus: CPUs a teacher task asks for and trains with (torch threads).

    Returns:
        ``autoinv.teacher.<key>`` tags for the parent run: ``cached``, ``checkpoint`` or where it trained (JSON).
    """
    import json

    import ray

    from autoinv import teachers

    tags: dict[str, str] = {}
    pending: dict[Any, tuple[str, Any]] = {}
    task = ray.remote(_train_teacher).options(num_gpus=min(1.0, gpus) if gpus > 0 else 0, num_cpus=cpus)
    for spec in specs:
        key = teachers.teacher_key(spec)
        label = f"teacher: {spec.arch} on {spec.dataset} ({key})"
        if spec.checkpoint:
            teachers.load_or_train(spec, cache_dir)  # a bad checkpoint is a usage error before any trial
            tags[f"autoinv.teacher.{key}"] = "checkpoint"
        elif teachers.is_cached(spec, cache_dir):
            print(f"{label}: cached", file=sys.stderr, flush=True)
            tags[f"autoinv.teacher.{key}"] = "cached"
        elif f"autoinv.teacher.{key}" not in tags and key not in {k for k, _ in pending.values()}:
            where = "1 GPU" if gpus > 0 else f"{cpus:g} CPU"
            print(f"{label}: training in a Ray task ({where})", file=sys.stderr, flush=True)
            pending[task.remote(spec, cache_dir, max(1, int(cpus)))] = (key, label)
    while pending:  # teachers of different specs train at once where the cluster has room
        ready, _ = ray.wait(list(pending), num_returns=1)
        key, label = pending.pop(ready[0])
        try:
            info = ray.get(ready[0])
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, ValueError):  # the data or teacher layers' user errors: one line, exit 2
                raise error.cause from None
            raise
        print(f"{label}: trained on {info['host']} ({info['device']}) in {info['seconds']:.0f} s", file=sys.stderr)
        tags[f"autoinv.teacher.{key}"] = json.dumps(info)
    return tags


def largest_node_cpus(with_gpu: bool = False) -> float:
    """CPUs of the alive node that has the most (of those with a GPU): what a teacher may take before any trial.

    Asking for more than one node has would leave the task unplaceable, so it is one node's count, not the sum.
    """
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    return max((r.get("CPU", 0.0) for r in nodes if r.get("GPU", 0) > 0 or not with_gpu), default=1.0)
