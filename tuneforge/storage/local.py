"""LocalStore: the object-store interface over the local file system.

Writes are atomic: data goes to a hidden temp file in the target's directory, is fsynced and renamed over
the target with os.replace, so readers see the old file or the new one, never a partial one (also across a
crash). Parent directories are created on write, since object stores have no directories. Listing uses S3
prefix semantics (`/d/ab` matches `/d/abc.txt` and `/d/ab/x`) and skips in-progress temp files.
Limits: no locking, so two concurrent writers of one path both succeed and the last rename wins.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from tuneforge.errors import AccessDenied, InvalidInput, NotFound, TuneforgeError
from tuneforge.storage._uri import Location, ObjectInfo

TEMP_SUFFIX = ".tuneforge-tmp"
_CHUNK = 1024 * 1024


def is_temp_name(name: str) -> bool:
    """True for the temp files atomic_write leaves while a write is in flight."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextmanager
def _os_errors(loc: Location) -> Iterator[None]:
    """Turn OSError into the tuneforge error a caller can act on."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(f"local file {str(loc)!r} does not exist: check the path or write it first") from None
    except IsADirectoryError:
        raise InvalidInput(f"{str(loc)!r} is a directory, not a file: name a file inside it") from None
    except NotADirectoryError:
        raise InvalidInput(f"a parent of {str(loc)!r} is a file, not a directory: fix the path") from None
    except PermissionError as exc:
        raise AccessDenied(f"permission denied on {exc.filename or str(loc)!r}: fix the file permissions or use another path") from None
    except OSError as exc:
        hint = "free some disk space" if exc.errno == errno.ENOSPC else "check the path and the file system"
        raise TuneforgeError(f"cannot access {str(loc)!r}: {exc.strerror or exc}: {hint}") from exc


class LocalStore:
    """ObjectStore over local files. Stateless; one instance serves every local location."""

    @contextmanager
    def open_read(self, loc: Location) -> Iterator[BinaryIO]:
        with _os_errors(loc):
            f = open(loc.path, "rb")
        with f:
            yield f

    @contextmanager
    def atomic_write(self, loc: Location) -> Iterator[BinaryIO]:
        target = loc.path
        with _os_errors(loc):
            if target.is_dir():
                raise IsADirectoryError(str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
            # os.open with 0o666 honours the umask; mkstemp would leave the final file 0600.
            f = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
        try:
            with f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            with _os_errors(loc):
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def read_bytes(self, loc: Location) -> bytes:
        with self.open_read(loc) as f:
            return f.read()

    def write_bytes(self, loc: Location, data: bytes) -> None:
        with self.atomic_write(loc) as f:
            f.write(data)

    def upload_file(self, local_path: Path, loc: Location) -> None:
        source = Location("file", "", str(local_path), plain=True)
        with self.open_read(source) as src, self.atomic_write(loc) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def download_file(self, loc: Location, local_path: Path) -> None:
        with self.open_read(loc) as src, self.atomic_write(loc.with_key(str(local_path))) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def exists(self, loc: Location) -> bool:
        """True if a file (not a directory) is at the path."""
        return loc.path.is_file()

    def list_objects(self, prefix: Location) -> Iterator[ObjectInfo]:
        # Sorted by path like S3 sorts keys, so both stores list in the same order.
        base = Path(prefix.key) if prefix.key.endswith("/") else Path(prefix.key).parent
        name_prefix = "" if prefix.key.endswith("/") else Path(prefix.key).name
        paths: list[str] = []
        try:
            entries = [e for e in os.scandir(base) if e.name.startswith(name_prefix)]
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing under a missing directory, as with an S3 prefix that matches no key
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                for root, _dirs, files in os.walk(entry.path):
                    paths += [os.path.join(root, f) for f in files if not is_temp_name(f)]
            elif entry.is_file() and not is_temp_name(entry.name):
                paths.append(entry.path)
        for path in sorted(paths):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # deleted while we listed
            yield ObjectInfo(
                uri=str(prefix.with_key(path)),
                size=st.st_size,
                etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
                last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
            )

    def delete(self, loc: Location) -> None:
        with _os_errors(loc):
            loc.path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Persist the rename itself; without this a crash can lose the new directory entry."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. platforms that cannot open directories; the data itself is already synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
