"""The storage layer on a local folder and on an S3-compatible server (moto's, on 127.0.0.1), then a search whose
``--storage`` is a bucket: run from an empty directory with an MLflow server, killed, resumed; and bad buckets."""

import functools
import os
import pickle
import time

import pyarrow.fs
import pytest
import torch

from autoinv import storage, teachers, tracking
from autoinv.storage import StorageError, open_storage
from tests.test_e2e import (
    TINY_SEARCH,
    all_artifacts,
    assert_resumed_search_finished_every_epoch_once,
    cli,
    env_for,
    free_port,
    kill_after_a_trial_closes,
    running_mlflow_server,
)
from tests.test_teachers import SPEC

BUCKET = "autoinv"
AWS_ENV = {  # moto takes any credentials; pyarrow and boto3 must find some and a region
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _fix_moto_multipart_reply():
    """moto 5.2 names the root of its CompleteMultipartUpload reply ``...Response``; S3 says ``...Result``.

    pyarrow's S3 client reads any other root as an error embedded in a 200 reply and retries until it gives up, so
    every object pyarrow writes (checkpoints, ``autoinv.json``) would fail against moto but not against S3.
    """
    from moto.s3.responses import S3Response

    original = S3Response._key_response_post
    if getattr(original, "fixed_for_pyarrow", False):
        return

    @functools.wraps(original)
    def fixed(self, *args, **kwargs):
        status, headers, body = original(self, *args, **kwargs)
        if isinstance(body, bytes):
            body = body.replace(b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult")
        elif isinstance(body, str):
            body = body.replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
        return status, headers, body

    fixed.fixed_for_pyarrow = True
    S3Response._key_response_post = fixed


@pytest.fixture(scope="module")
def s3():
    """An S3-compatible server on 127.0.0.1 with bucket ``autoinv``; yields its port."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    _fix_moto_multipart_reply()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=BUCKET)
    yield port
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def s3_uri(port, path="runs", bucket=BUCKET):
    return f"s3://{bucket}/{path}?endpoint_override=127.0.0.1:{port}&scheme=http"


def bucket_keys(port):
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_storage(str(tmp_path / "runs"))
    port = request.getfixturevalue("s3")
    return open_storage(s3_uri(port, f"runs-{os.urandom(4).hex()}"))


# ---------------------------------------------------------------------------------------------------------------------
# The layer itself


def test_join_goes_into_the_path_and_keeps_the_query():
    store = open_storage("s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    child = store.join("erm-1", "cache")
    assert child.path == "bucket/runs/erm-1/cache" and child.name == "cache"
    assert child.uri == "s3://bucket/runs/erm-1/cache?endpoint_override=127.0.0.1:9000&scheme=http"
    assert open_storage(child.uri).path == child.path  # the URI a worker gets opens the same folder
    bare = open_storage("s3://bucket?endpoint_override=127.0.0.1:9000&scheme=http")  # the bucket's root
    assert bare.join("a").uri == "s3://bucket/a?endpoint_override=127.0.0.1:9000&scheme=http"
    assert bare.join("a").path == "bucket/a"
    assert not store.is_local


def test_local_paths_stay_plain_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_storage("autoinv_results")
    assert store.is_local and store.uri == store.path == str(tmp_path / "autoinv_results")
    assert store.join("erm-1", "autoinv.json").uri == str(tmp_path / "autoinv_results" / "erm-1" / "autoinv.json")
    assert store.local_cache() == store.path
    assert not os.listdir(tmp_path), "opening a store writes nothing"


def test_write_read_list_and_exists(store):
    assert not store.exists() and store.list_folders() == []
    store.check()  # a folder that does not exist yet is fine: the search makes it
    search = store.join("erm-20250101-000000")
    search.write_json("autoinv.json", {"state": "running", "n": 3})
    store.join("erm-20250102-000000").write_bytes("cache/x.bin", b"\x00\x01")
    assert search.read_json("autoinv.json") == {"state": "running", "n": 3}
    assert search.exists("autoinv.json") and not search.exists("nothing.json")
    assert store.list_folders() == ["erm-20250101-000000", "erm-20250102-000000"]
    assert store.join("erm-20250102-000000", "cache").read_bytes("x.bin") == b"\x00\x01"
    search.write_json("autoinv.json", {"state": "finished"})  # replaced, not appended, no temporary left
    assert search.read_json("autoinv.json") == {"state": "finished"}
    assert store.join("erm-20250101-000000").list_folders() == []
    with pytest.raises(FileNotFoundError):
        search.read_bytes("nothing.json")


def test_upload_download_and_pickling(store, tmp_path):
    source = tmp_path / "weights.pt"
    source.write_bytes(b"weights")
    store.upload(str(source), "teachers/a.pt")
    store.download("teachers/a.pt", str(tmp_path / "copy" / "a.pt"))
    assert (tmp_path / "copy" / "a.pt").read_bytes() == b"weights"
    again = pickle.loads(pickle.dumps(store))  # what a Ray worker receives: the URI, opened again there
    assert again == store and again.read_bytes("teachers/a.pt") == b"weights"


def test_a_trial_keeps_its_newest_two_epoch_files(store):
    from autoinv import search

    trial = store.join("erm-1", "trial_0")
    paths = []
    for epoch in range(5):
        trial.write_bytes(f"{search.EPOCH_FILE_PREFIX}{epoch:05d}.pt", b"state %d" % epoch)
        paths = search._prune_epoch_files(
            store.fs, paths + [trial.join(f"{search.EPOCH_FILE_PREFIX}{epoch:05d}.pt").path]
        )
    assert search._prune_epoch_files(store.fs, paths) == paths  # again, as after a resume: nothing changes
    names = sorted(os.path.basename(f.path) for f in store.fs.get_file_info(pyarrow.fs.FileSelector(trial.path)))
    assert names == [f"{search.EPOCH_FILE_PREFIX}00003.pt", f"{search.EPOCH_FILE_PREFIX}00004.pt"]
    assert trial.read_bytes(f"{search.EPOCH_FILE_PREFIX}00004.pt") == b"state 4"


def test_check_names_a_missing_bucket(s3):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' .* does not exist"):
        open_storage(s3_uri(s3, bucket="no-such-bucket")).check()


def test_check_names_an_endpoint_that_does_not_answer():
    started = time.perf_counter()
    with pytest.raises(StorageError, match="does not answer") as error:
        open_storage(f"s3://{BUCKET}/runs?endpoint_override=127.0.0.1:{free_port()}&scheme=http").check()
    assert "\n" not in str(error.value) and time.perf_counter() - started < 30


def test_a_uri_pyarrow_cannot_read_is_one_line():
    with pytest.raises(StorageError, match="not usable"):
        open_storage("s3://bucket/runs?no_such_option=1")


def test_a_local_file_is_not_a_storage_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        open_storage(str(tmp_path / "file")).check()


def test_teacher_trained_once_uploaded_then_downloaded_on_another_node(s3, tmp_path, monkeypatch):
    cache = s3_uri(s3, "teacher-cache")
    monkeypatch.setenv("HOME", str(tmp_path / "node1"))  # the node-local copy lives under ~/.cache
    first = teachers.load_or_train(SPEC, cache, progress=False)
    key = f"teacher-cache/teachers/{teachers.teacher_key(SPEC)}.pt"
    assert key in bucket_keys(s3)

    def no_training(*args, **kwargs):
        raise AssertionError("a teacher in the bucket must not be trained again")

    monkeypatch.setattr(teachers, "_train", no_training)
    monkeypatch.setenv("HOME", str(tmp_path / "node2"))  # a node that has never seen it
    second = teachers.load_or_train(SPEC, cache, progress=False)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(first(x), second(x))
    assert storage.local_folder(cache).startswith(str(tmp_path / "node2"))


# ---------------------------------------------------------------------------------------------------------------------
# A search in a bucket


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with proxied artifacts in a temporary folder; yields its URI."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(
        folder, "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")
    ) as uri:
        yield uri


def test_search_in_a_bucket_from_an_empty_directory_survives_kill_9_and_resumes(s3, mlflow_server, tmp_path):
    """Nothing lands in the working directory; checkpoints and metadata are in the bucket; figures come back
    through the server; after ``kill -9`` of the driver, ``--resume`` from the bucket repeats no epoch."""
    from autoinv import search

    empty = tmp_path / "empty"
    empty.mkdir()
    uri = s3_uri(s3, "search")
    args = [*TINY_SEARCH, "--num-samples", "4", "--max-concurrent", "2", "--seed", "3", "--set", "steps_per_epoch=30"]
    args = [a for a in args if a != "steps_per_epoch=6"]
    args += ["--storage", uri, "--tracking-uri", mlflow_server]
    env = {**env_for(tmp_path), **AWS_ENV}
    kill_after_a_trial_closes(args, empty, env, mlflow_server, tmp_path / "driver.log")
    resumed = cli("search", *args, "--resume", cwd=empty, extra_env={**AWS_ENV, "AUTOINV_DATA": env["AUTOINV_DATA"]})
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert os.listdir(empty) == [], "a search in a bucket writes nothing in the working directory"

    client = tracking.client_for(mlflow_server)
    parent, children = assert_resumed_search_finished_every_epoch_once(client, 4)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    for child in children:  # listed (and so downloadable) through the server, from any machine
        pictures = [f for f in all_artifacts(client, child.info.run_id, "figures") if f.endswith(".png")]
        assert pictures, child.info.run_name
    assert f"look:   {mlflow_server}/#/experiments/{experiment.experiment_id}/runs" in resumed.stdout

    keys = bucket_keys(s3)
    run_name = parent.info.run_name
    assert parent.data.tags["autoinv.storage"] == s3_uri(s3, f"search/{run_name}")
    assert f"search/{run_name}/autoinv.json" in keys
    assert any(k.startswith(f"search/{run_name}/experiment_state") for k in keys)
    epoch_files = [
        k
        for k in keys
        if k.startswith(f"search/{run_name}/") and os.path.basename(k).startswith(search.EPOCH_FILE_PREFIX)
    ]
    assert len({os.path.dirname(k) for k in epoch_files}) == 4, epoch_files  # every trial's state is in the bucket
    assert len(epoch_files) <= 4 * search.KEEP_EPOCH_FILES, epoch_files
    assert open_storage(uri).join(run_name).read_json("autoinv.json")["state"] == "finished"


@pytest.mark.parametrize(
    "storage_uri, message",
    [
        ("s3://no-such-bucket/runs?endpoint_override=127.0.0.1:{port}&scheme=http", "does not exist"),
        (f"s3://{BUCKET}/runs?endpoint_override=127.0.0.1:{{dead}}&scheme=http", "does not answer"),
    ],
    ids=["missing-bucket", "dead-endpoint"],
)
def test_a_bad_bucket_fails_before_anything_starts(s3, tmp_path, storage_uri, message):
    storage_uri = storage_uri.format(port=s3, dead=free_port())
    empty = tmp_path / "empty"
    empty.mkdir()
    data = {"AUTOINV_DATA": str(tmp_path / "data")}
    result = cli("search", *TINY_SEARCH, "--storage", storage_uri, cwd=empty, extra_env={**AWS_ENV, **data})
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert os.listdir(empty) == [], "no MLflow database, no run, no folder"


# ---------------------------------------------------------------------------------------------------------------------
# Artifacts through the tracking server


def test_a_server_keeps_the_artifacts_a_database_keeps_todays_folder(tmp_path):
    assert tracking.artifact_root("http://10.0.0.1:5000") == tracking.artifact_root("https://mlflow.lab") == ""
    assert tracking.artifact_root(tracking.default_tracking_uri(str(tmp_path)), str(tmp_path)) == str(
        tmp_path / "mlartifacts"
    )


def test_an_old_experiment_with_a_folder_on_a_server_is_named(mlflow_server, tmp_path):
    client = tracking.client_for(mlflow_server)
    old = client.create_experiment("made-by-an-older-autoinv", artifact_location=f"file://{tmp_path}/mlartifacts")
    note = tracking.server_artifacts_note(client, old, mlflow_server)
    assert "not on the server" in note and "--experiment" in note
    new = tracking.get_or_create_experiment(client, "made-now", artifact_root=tracking.artifact_root(mlflow_server))
    assert client.get_experiment(new).artifact_location.startswith("mlflow-artifacts:")
    assert tracking.server_artifacts_note(client, new, mlflow_server) == ""
