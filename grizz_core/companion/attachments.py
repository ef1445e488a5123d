"""Image attachments: read a file, check it really is an image, make a data URL."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

from grizz_core.domain import Attachment
from grizz_core.errors import UsageError

MAX_IMAGE_BYTES = 20 * 1024 * 1024

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(data: bytes) -> str | None:
    """The MIME type of PNG/JPEG/GIF/WebP bytes, or None."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load_image(path: str | Path) -> Attachment:
    """Read an image file into an `Attachment`.

    Raises:
        UsageError: missing, unreadable, too large, or not a PNG/JPEG/GIF/WebP image.
    """
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise UsageError(
                f"{path} is {size / 1e6:.1f} MB; images can be at most "
                f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB."
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"No such image file: {path}.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an image.") from None
    except OSError as exc:
        raise UsageError(f"Could not read {path}: {exc.strerror}.") from None
    mime = sniff_image(data)
    if mime is None:
        raise UsageError(
            f"{path} is not an image Grizz can send (PNG, JPEG, GIF or WebP)."
        )
    return Attachment(
        id=str(uuid.uuid4()),
        message_id="",
        name=path.name,
        mime=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
    )


def data_url(attachment: Attachment) -> str:
    """`data:<mime>;base64,…` as the chat-completions `image_url` expects."""
    return (
        f"data:{attachment.mime};base64,"
        + base64.b64encode(attachment.content).decode()
    )
