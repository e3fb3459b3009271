"""OpenAI's /v1/files over tuneforge.files: upload (multipart), list, retrieve, content, delete."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from tuneforge.api.services import Services
from tuneforge.db.tables import FileRow
from tuneforge.errors import InvalidInput, PayloadTooLarge

MULTIPART_OVERHEAD = 64 << 10  # the form's boundaries and fields around the file itself


async def read_upload(s: Services, request: Request) -> tuple[UploadFile, str]:
    """The form's file and purpose; the file is spooled to disk by Starlette, never held whole in memory."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("send the file as multipart/form-data with the fields 'file' and 'purpose'", field="file")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > s.settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"file: larger than this server's limit of {s.settings.max_upload_bytes} bytes "
                              "(TUNEFORGE_MAX_UPLOAD_BYTES): split it or raise the limit", field="file")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except HTTPException as exc:  # Starlette's answer to a malformed form: ours instead, in OpenAI's JSON
        raise InvalidInput(f"file: the multipart form could not be read: {exc.detail}", field="file") from None
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("file: the form has no file part named 'file'", field="file")
    if not isinstance(purpose, str) or not purpose:
        raise InvalidInput("purpose: required, 'fine-tune' or 'batch'", field="purpose")
    return upload, purpose


def upload(s: Services, file: UploadFile, purpose: str) -> dict:
    return file_object(s.files.upload(file.file, filename=file.filename or "", purpose=purpose))


def list_files(s: Services, *, purpose: str | None, limit: int, after: str | None, order: str) -> dict:
    rows, more = s.files.list(purpose=purpose, limit=limit, after=after, order=order)
    data = [file_object(r) for r in rows]
    return {"object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def delete(s: Services, file_id: str) -> dict:
    return {"id": s.files.delete(file_id).file_id, "object": "file", "deleted": True}


def file_object(row: FileRow) -> dict:
    return {"id": row.file_id, "object": "file", "bytes": row.size, "created_at": int(row.created_at.timestamp()),
            "filename": row.filename, "purpose": row.purpose, "status": "processed", "expires_at": None, "status_details": None}
