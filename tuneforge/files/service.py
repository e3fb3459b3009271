"""Upload, list, read and delete files (OpenAI's /v1/files semantics); the HTTP edge is a thin layer over this.

A file is written to `<home>/files/<file_id>` through a temporary name, checked for its purpose (tuneforge.files.checks),
and only then recorded: a file that fails its check, or an upload cut short, leaves neither a row nor bytes behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import CustomizationJobRow, FileRow
from tuneforge.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from tuneforge.jobs.states import RUNNING
from tuneforge.files.checks import Purpose, check_file, parse_purpose
from tuneforge.settings import Settings

COPY_CHUNK = 1 << 20
MAX_LIST = 10_000  # OpenAI's limit on /v1/files?limit=
MAX_FILENAME = 255


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


class FileService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.root = settings.home / "files"

    def upload(self, source: BinaryIO, *, filename: str, purpose: str) -> FileRow:
        kind = parse_purpose(purpose)
        name = os.path.basename(filename or "")
        if not name or len(name) > MAX_FILENAME:
            raise InvalidInput(f"file: give the file a name of 1-{MAX_FILENAME} characters, got {filename!r}", field="file")
        return self._add(name, kind, lambda partial: (self._copy(source, partial), check_file(partial, kind, name)))

    def store(self, data: bytes, *, filename: str, purpose: Purpose) -> FileRow:
        """A file tuneforge writes itself (a batch's output): no check, the same row and listing as an upload."""
        return self._add(filename, purpose, lambda partial: (partial.write_bytes(data), data.count(b"\n")))

    def _add(self, filename: str, purpose: Purpose, write: Callable[[Path], tuple[int, int]]) -> FileRow:
        """Write the bytes under a temporary name (`write` returns their size and record count), rename, then record
        the row: a failure anywhere leaves neither bytes nor a row."""
        file_id = new_file_id()
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / file_id
        partial = self.root / f".{file_id}.partial"
        try:
            size, records = write(partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        row = FileRow(file_id=file_id, filename=filename, purpose=purpose.value, size=size, records=records, uri=str(final))
        try:
            with session_scope(self.sessions) as session:
                session.add(row)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return self.get(file_id)

    def _copy(self, source: BinaryIO, target: Path) -> int:
        limit = self.settings.max_upload_bytes
        size = 0
        with open(target, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"file: larger than this server's limit of {limit} bytes "
                                          "(TUNEFORGE_MAX_UPLOAD_BYTES): split it or raise the limit", field="file")
                out.write(chunk)
        return size

    def get(self, file_id: str, *, field: str = "file_id") -> FileRow:
        with self.sessions() as session:
            row = session.get(FileRow, file_id)
        if row is None:
            raise NotFound(f"no file {file_id!r}: see GET /v1/files", field=field)
        return row

    def require(self, file_id: str, purpose: Purpose, *, field: str) -> FileRow:
        """The file a request names, refused when it was uploaded for another purpose."""
        row = self.get(file_id, field=field)
        if row.purpose != purpose.value:
            raise InvalidInput(f"{field}: {file_id} was uploaded with purpose {row.purpose!r}; upload it with purpose "
                               f"{purpose.value!r}", field=field)
        return row

    def list(self, *, purpose: str | None = None, limit: int = MAX_LIST, after: str | None = None,
             order: str = "desc") -> tuple[list[FileRow], bool]:
        """A page of files, newest first by default, after the file id `after`; and whether more follow."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1-{MAX_LIST}, got {limit}", field="limit")
        if order not in ("asc", "desc"):
            raise InvalidInput(f"order must be 'asc' or 'desc', got {order!r}", field="order")
        query = select(FileRow)
        if purpose:
            query = query.where(FileRow.purpose == parse_purpose(purpose, uploading=False).value)
        newest_first = order == "desc"
        query = query.order_by(*(
            (FileRow.created_at.desc(), FileRow.file_id.desc()) if newest_first else (FileRow.created_at.asc(), FileRow.file_id.asc())))
        with self.sessions() as session:
            rows = list(session.scalars(query).all())
        if after:
            ids = [r.file_id for r in rows]
            if after not in ids:
                raise InvalidInput(f"after: no file {after!r} in this listing", field="after")
            rows = rows[ids.index(after) + 1:]
        return rows[:limit], len(rows) > limit

    def delete(self, file_id: str) -> FileRow:
        """Refused while a customization job that trains on the file runs: it reads the file again when it restarts."""
        row = self.get(file_id)
        with session_scope(self.sessions) as session:
            user = session.scalars(select(CustomizationJobRow.job_name).where(
                (CustomizationJobRow.training_file_id == file_id) | (CustomizationJobRow.validation_file_id == file_id),
                CustomizationJobRow.status.in_(RUNNING))).first()
            if user is not None:
                raise Conflict(f"file {file_id} is the data of fine-tuning job {user}, which is running: cancel it first, "
                               "or delete the file once it ends", field="file_id")
            session.query(FileRow).filter(FileRow.file_id == file_id).delete()
        Path(row.uri).unlink(missing_ok=True)
        return row
