"""Attachment bytes on disk, content-addressed under ``<data_dir>/files/``."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from sqlmodel import Session

from store.models import StoredFile

_SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_filename(name: str | None) -> str | None:
    """A display name with no path, no control characters, at most 255 characters."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", name).strip(" .")
    return name[:255] or None


def save_file(session: Session, data_dir: Path, data: bytes, *, content_type: str, filename: str | None = None,
              message_id: int | None = None, complaint_id: int | None = None) -> StoredFile:
    """Write ``data`` (once per content) and record it; returns the row."""
    digest = hashlib.sha256(data).hexdigest()
    relative = Path("files") / digest[:2] / digest
    path = data_dir / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    row = StoredFile(message_id=message_id, complaint_id=complaint_id, sha256=digest, size=len(data),
                     content_type=content_type[:255], filename=safe_filename(filename), storage_path=str(relative))
    session.add(row)
    session.flush()
    return row


def read_file(data_dir: Path, row: StoredFile) -> bytes:
    return (data_dir / row.storage_path).read_bytes()
