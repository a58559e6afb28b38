"""`ModelStore` on fsspec: local disk, `memory://`, and object stores.

How each backend keeps `save` atomic:

- **Local filesystem** (`/srv/models`, `file:///srv/models`, relative paths): the payload
  goes to a hidden temporary file in the target's own directory
  (`.<name>.<random>.tmp`), is flushed and fsync'ed, and is then renamed over the target
  with `os.replace`, which POSIX (and Windows, for files on one volume) performs
  atomically; the directory is fsync'ed after the rename so the new name survives a
  power loss. A crash before the rename leaves the old file untouched and, at worst, a
  stray hidden temporary file that no key can name and `list` never shows.
- **Object stores** (`s3://`, `gs://`, `az://`, ... with the matching fsspec backend
  installed) and **`memory://`**: one `pipe_file` call, i.e. one PUT (or a multipart
  upload completed at the end). Objects become visible only once complete, so readers
  see the old object or the whole new one.

Other fsspec protocols (sftp, ftp, webdav, ...) write in place and could expose a partial
file, so they are refused rather than silently weakening the guarantee.

S3 needs the `s3` extra (`pip install 'ovencast[s3]'`: s3fs). `MODEL_STORAGE_OPTIONS` (JSON)
goes to the backend as its storage options, e.g. `{"endpoint_url": "http://minio:9000"}`
for an S3-compatible server. Object stores are opened without fsspec's listings cache:
other processes (every worker) write to the same store, and a cached listing would hide
their artifacts from `exists` and `list`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from fsspec import AbstractFileSystem
from fsspec.core import split_protocol, url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ovencast.errors import Misconfigured
from ovencast.store.base import ModelStore, missing, validate_key

if TYPE_CHECKING:
    from ovencast.settings import Settings

# Protocols whose writes become visible all at once (see module docstring).
ATOMIC_PUT_PROTOCOLS = frozenset(
    {"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss"}
)
# Object stores shared by many processes (see module docstring: no listings cache).
OBJECT_STORE_PROTOCOLS = ATOMIC_PUT_PROTOCOLS - {"memory"}
TEMP_SUFFIX = ".tmp"
_WRITE_CHUNK_BYTES = 1 << 20
# Room left in a 255-byte file name for the temp file's dot, random part and suffix.
_TEMP_NAME_STEM_LENGTH = 200
_FILE_MODE = 0o644  # what open() gives under the usual umask; mkstemp would give 0o600


class FsspecModelStore(ModelStore):
    """A model store rooted at a local path or an fsspec URL.

    `root` is a local path (`/srv/models`, `file:///srv/models`) or a URL
    (`memory://models`, `s3://bucket/models`); `storage_options` go to the fsspec
    backend (credentials, endpoint). Uris handed out are full URLs such as
    `file:///srv/models/acme-.../v000001.json`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        backup_enabled: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backup_enabled=backup_enabled)
        options = dict(storage_options or {})
        protocol, _ = split_protocol(os.fspath(root))
        if protocol in OBJECT_STORE_PROTOCOLS:
            options.setdefault("use_listings_cache", False)
        try:
            fs, path = url_to_fs(os.fspath(root), **options)
        except ImportError as exc:  # fsspec names the package to install
            raise Misconfigured(f"model storage {os.fspath(root)!r}: {exc}"
                                + (" (pip install 'ovencast[s3]')"
                                   if protocol in ("s3", "s3a") else "")) from None
        self._fs: AbstractFileSystem = fs
        self._local = isinstance(fs, LocalFileSystem)
        if not self._local and not (set(_protocols(fs)) & ATOMIC_PUT_PROTOCOLS):
            raise ValueError(
                f"model storage {os.fspath(root)!r}: writes over fsspec protocol "
                f"{_protocols(fs)[0]!r} are not atomic; use a local path or an object store"
            )
        self._root = path.rstrip("/")

    @property
    def fs(self) -> AbstractFileSystem:
        """The underlying fsspec filesystem (for tests and diagnostics)."""
        return self._fs

    @property
    def root_uri(self) -> str:
        return str(self._fs.unstrip_protocol(self._root))

    def uri_for(self, key: str) -> str:
        return str(self._fs.unstrip_protocol(self._path(key)))

    def key_for(self, uri: str) -> str:
        if "://" not in uri and not uri.startswith("/"):
            return validate_key(uri)
        protocol, _ = split_protocol(uri)
        if protocol is not None and protocol not in _protocols(self._fs):
            raise ValueError(f"{uri!r} is not inside the model store at {self.root_uri}")
        path = str(self._fs._strip_protocol(uri))
        prefix = self._root + "/"
        if not path.startswith(prefix):
            raise ValueError(f"{uri!r} is not inside the model store at {self.root_uri}")
        return validate_key(path[len(prefix) :])

    # -- primitives -------------------------------------------------------------------
    def _put_atomic(self, key: str, payload: bytes) -> None:
        if self._local:
            _write_local_atomic(self._path(key), payload)
        else:
            self._fs.pipe_file(self._path(key), payload)

    def _get(self, key: str) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise missing(key) from None

    def _exists(self, key: str) -> bool:
        return bool(self._fs.isfile(self._path(key)))

    def _delete(self, key: str) -> bool:
        if not self._exists(key):
            return False
        try:
            self._fs.rm_file(self._path(key))
        except FileNotFoundError:  # removed by someone else in between
            return False
        return True

    def _copy(self, source: str, target: str) -> None:
        if self._local:
            # shutil-style copies write in place; go through the atomic writer instead.
            _write_local_atomic(self._path(target), self._get(source))
        else:
            self._fs.cp_file(self._path(source), self._path(target))

    def _list_keys(self, prefix: str) -> builtins.list[str]:
        directory = prefix.rpartition("/")[0]
        search = f"{self._root}/{directory}" if directory else self._root
        root_prefix = self._root + "/"
        keys = []
        for path in self._fs.find(search):
            path = str(path)
            if not path.startswith(root_prefix):
                continue
            try:
                keys.append(validate_key(path[len(root_prefix) :]))
            except ValueError:  # temp files, stray files that are no artifacts
                continue
        return keys

    def _path(self, key: str) -> str:
        return f"{self._root}/{validate_key(key)}"


def open_store(url_or_path: str | os.PathLike[str], *, backup_enabled: bool,
               storage_options: Mapping[str, Any] | None = None) -> ModelStore:
    """The store for `MODEL_STORAGE_PATH` (a local path or an fsspec URL)."""
    return FsspecModelStore(url_or_path, backup_enabled=backup_enabled,
                            storage_options=storage_options)


def store_for(settings: Settings) -> ModelStore:
    """The store the settings name: MODEL_STORAGE_PATH, MODEL_STORAGE_OPTIONS,
    MODEL_BACKUP_ENABLED."""
    return open_store(settings.resolved_model_storage_path,
                      backup_enabled=settings.model_backup_enabled,
                      storage_options=settings.model_storage_options)


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _write_local_atomic(path: str, payload: bytes) -> None:
    """Temp file in the same directory, flush + fsync, rename over `path`, fsync the
    directory. On any exception the temp file is removed and `path` is untouched."""
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(
        dir=directory, prefix=f".{name[:_TEMP_NAME_STEM_LENGTH]}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), _FILE_MODE)
            _write_chunks(stream, payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    _fsync_directory(directory)


def _write_chunks(stream: IO[bytes], payload: bytes) -> None:
    """Write `payload` to `stream` in chunks. The one low-level write of the local
    backend, kept separate so tests can make it fail (or stall) half-way."""
    view = memoryview(payload)
    for start in range(0, len(view), _WRITE_CHUNK_BYTES):
        stream.write(view[start : start + _WRITE_CHUNK_BYTES])


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable. Directories cannot be opened for fsync on Windows, where
    # os.replace is durable enough for our purposes.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
