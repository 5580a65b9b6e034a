"""Where a search keeps its files: a local folder or object storage, behind one pyarrow filesystem.

A search's metadata (``autoinv.json``), its teacher cache, Ray Tune's checkpoints and ``--resume``'s look-up all
go through a :class:`Storage`: ``--storage`` is split once, by ``pyarrow.fs.FileSystem.from_uri`` (what Ray Tune
uses itself), into a filesystem and a path on it, and sub-folders are joined onto that path, never onto the URI
string, so URIs with query parameters (``s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http``) keep
their parameters and local folders stay plain paths.

Example:
    store = open_storage("s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    store.check()                                   # one-line StorageError when the bucket or endpoint is wrong
    search = store.join("erm-20250101-120000")
    search.write_json("autoinv.json", {"state": "running"})
    tune.RunConfig(storage_path=store.path, storage_filesystem=store.fs)
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import types
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["Storage", "StorageError", "open_storage", "is_uri", "local_folder"]


class StorageError(ValueError):
    """``--storage`` cannot be used (bad URI, missing bucket, endpoint that does not answer); says what to do."""


def is_uri(location: str) -> bool:
    """Whether ``location`` names a filesystem by scheme (``s3://``, ``gs://``, ``file://``) rather than a path."""
    return "://" in location


class Storage:
    """A folder on a pyarrow filesystem: local, S3, GCS, or whatever ``FileSystem.from_uri`` knows.

    Pickles as its URI, so a Ray worker that receives one resolves the filesystem (and its credentials) itself.

    Args:
        uri: A local path (made absolute) or a URI, query parameters included.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri if is_uri(uri) else os.path.abspath(uri)
        try:
            self.fs, self.path = _pafs().FileSystem.from_uri(self.uri)
        except (ValueError, OSError, TypeError) as error:  # ArrowInvalid is a ValueError; a region look-up an OSError
            raise StorageError(f"--storage {uri!r} is not usable: {_first_line(error)}") from None
        self.is_local = isinstance(self.fs, _pafs().LocalFileSystem)

    def __reduce__(self) -> tuple:
        return Storage, (self.uri,)

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Storage) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def join(self, *parts: str) -> Storage:
        """The sub-folder ``parts`` (``"a", "b"`` or ``"a/b"``) of this folder, on the same filesystem."""
        child = Storage.__new__(Storage)
        child.fs, child.is_local = self.fs, self.is_local
        child.path = posixpath.join(self.path, *parts)
        if is_uri(self.uri):  # the parts go into the URI's path; scheme, bucket and query stay as they are
            scheme, netloc, path, query, fragment = urllib.parse.urlsplit(self.uri)
            path = "/" + posixpath.join(path, *parts).lstrip("/")
            child.uri = urllib.parse.urlunsplit((scheme, netloc, path, query, fragment))
        else:
            child.uri = os.path.join(self.uri, *parts)
        return child

    @property
    def name(self) -> str:
        """The last component of the path (a search folder's run name)."""
        return posixpath.basename(self.path.rstrip("/"))

    def exists(self, name: str = "") -> bool:
        """Whether the file or folder ``name`` (this folder itself by default) exists."""
        return self._info(name).type != _pafs().FileType.NotFound

    def list_folders(self) -> list[str]:
        """Names of the sub-folders directly in this folder, sorted; empty when the folder does not exist."""
        selector = _pafs().FileSelector(self.path, recursive=False, allow_not_found=True)
        infos = self._call(self.fs.get_file_info, selector)
        return sorted(posixpath.basename(i.path) for i in infos if i.type == _pafs().FileType.Directory)

    def read_bytes(self, name: str) -> bytes:
        """The contents of file ``name``."""
        with self._call(self.fs.open_input_stream, self._at(name)) as f:
            return f.read()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write file ``name``; a reader never sees half of it.

        An object store replaces an object in one request; a local folder gets a temporary file then a rename.
        """
        path = self._at(name)
        if not self.is_local:
            with self._call(self.fs.open_output_stream, path) as f:
                f.write(data)
            return
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        with self.fs.open_output_stream(path + ".tmp") as f:
            f.write(data)
        self.fs.move(path + ".tmp", path)

    def read_json(self, name: str) -> Any:
        """The JSON document in file ``name``."""
        return json.loads(self.read_bytes(name))

    def write_json(self, name: str, document: Any) -> None:
        """Write ``document`` as indented JSON to file ``name`` (values JSON does not know become strings)."""
        self.write_bytes(name, json.dumps(document, indent=1, default=str).encode())

    def upload(self, local_path: str, name: str) -> None:
        """Copy the local file ``local_path`` to file ``name`` here."""
        with open(local_path, "rb") as f:
            self.write_bytes(name, f.read())

    def download(self, name: str, local_path: str) -> None:
        """Copy file ``name`` to ``local_path`` (through a temporary file, so a reader never sees half of it)."""
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        with open(local_path + ".tmp", "wb") as f:
            f.write(self.read_bytes(name))
        os.replace(local_path + ".tmp", local_path)

    def local_cache(self) -> str:
        """A local folder for copies of this folder's files: the folder itself when it is local.

        Remote folders are mirrored under ``~/.cache/autoinv/storage/<digest of the URI>``, one per node, so the
        trials on a node download a file (a teacher) once.
        """
        if self.is_local:
            return self.path
        digest = hashlib.sha256(self.uri.encode()).hexdigest()[:16]
        return os.path.join(os.path.expanduser("~"), ".cache", "autoinv", "storage", digest)

    def check(self) -> None:
        """Raise :class:`StorageError` (one line) unless the storage answers and its bucket exists; writes nothing.

        A local folder need not exist yet (it is made when the search starts); it must not be a file.
        """
        info = self._info("")
        if info.type == _pafs().FileType.File:
            raise StorageError(f"--storage {self.uri} is a file; give a folder (or an s3:// / gs:// URI)")
        if self.is_local:
            return
        bucket = self.path.split("/", 1)[0]
        if self._info_of(bucket).type == _pafs().FileType.NotFound:
            raise StorageError(
                f"bucket {bucket!r} of --storage {self.uri} does not exist; create it (or fix the URI) and run again"
            )

    def _at(self, name: str) -> str:
        return posixpath.join(self.path, name) if name else self.path

    def _info(self, name: str) -> pyarrow.fs.FileInfo:
        return self._info_of(self._at(name))

    def _info_of(self, path: str) -> pyarrow.fs.FileInfo:
        return self._call(self.fs.get_file_info, path)

    def _call(self, function: Any, *args: Any) -> Any:
        """``function(*args)``, with the filesystem's errors (endpoint down, access denied) as one StorageError."""
        try:
            return function(*args)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise StorageError(
                f"storage {self.uri} does not answer: {_first_line(error)}; check the endpoint and credentials"
            ) from None


def open_storage(location: str | Storage) -> Storage:
    """The :class:`Storage` for a path or URI (a Storage is returned as it is)."""
    return location if isinstance(location, Storage) else Storage(location)


def local_folder(location: str) -> str:
    """A local folder for ``location``'s files: the folder itself when local, else its node-local mirror."""
    return open_storage(location).local_cache()


def _pafs() -> types.ModuleType:
    """``pyarrow.fs``, imported on first use: the CLIs parse arguments and print ``--dry-run`` plans without it."""
    import pyarrow.fs

    return pyarrow.fs


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
