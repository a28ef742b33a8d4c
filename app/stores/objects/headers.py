"""Response headers for served media: what a browser may do with bytes a client uploaded.

Uploaded bytes are whatever the uploader sent. The declared type is checked, the content is
not, so a "PNG" may hold HTML or script. These headers keep a browser from treating it as a
document of the origin that serves it: no sniffing past the declared type, a download rather
than a page for anything that is not a plain image or video, and a sandbox with no sources
should it be rendered anyway.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

INLINE_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "video/mp4",
        "video/webm",
        "video/quicktime",
    }
)
"""Types browsers only ever display as media, never run. Not ``image/svg+xml``: SVG is a
document that may carry script, so it (like anything unknown) is served as an attachment."""

SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
"""Sent with every response from ``/media/``: nothing in it may be sniffed, load anything,
run script, or act as the app's origin."""

# RFC 5987 attr-char: what may stay unescaped in ext-value (letters and digits are implied).
_ATTR_CHAR: Final = "!#$&+-.^_`|~"
# RFC 6266 section 4.3/appendix D: a plain fallback without '%' (some agents decode it),
# backslash or quote (escapes some agents get wrong), and only printable ASCII.
_FALLBACK_UNSAFE: Final = frozenset('%"\\')


def _ascii_fallback(filename: str) -> str:
    return "".join(
        ch if " " <= ch <= "~" and ch not in _FALLBACK_UNSAFE else "_" for ch in filename
    )


def content_disposition(content_type: str | None, filename: str) -> str:
    """``inline`` for plain images and videos, ``attachment`` for anything else, with the
    filename both as a quoted ASCII fallback and as RFC 5987 UTF-8 (``filename*``), which
    agents that understand it prefer."""
    base = (content_type or "").split(";")[0].strip().lower()
    kind = "inline" if base in INLINE_TYPES else "attachment"
    encoded = quote(filename, safe=_ATTR_CHAR, encoding="utf-8")
    return f"{kind}; filename=\"{_ascii_fallback(filename)}\"; filename*=UTF-8''{encoded}"
