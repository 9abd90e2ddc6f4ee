"""Files on the server: how big an upload may be, how long it is kept, and the check before any decoder opens it."""

from __future__ import annotations

from pathlib import Path

from demos.errors import UserError

MAX_UPLOAD_BYTES = 500 * 2**20  # largest upload: the server refuses a bigger one while it arrives, and never opens it
# Uploads and results are deleted from the server this long after they were written (the app's `delete_cache`):
# a page open longer asks for a new upload. Checked every FILES_SWEEP_S.
FILES_KEPT_S = 3600
FILES_SWEEP_S = 600


def check_file(path: Path, what: str, hint: str) -> int:
    """Refuse a missing, empty or oversized file before any decoder touches it; return its size."""
    if not path.is_file():
        raise UserError(f"The {what} file is no longer on the server (uploads are kept for {FILES_KEPT_S // 60} "
                        "minutes); please upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"The {what} file is empty (0 bytes). {hint}")
    if size > MAX_UPLOAD_BYTES:
        raise UserError(f"The {what} file is {size / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
                        f"Please use a smaller file.")
    return size

