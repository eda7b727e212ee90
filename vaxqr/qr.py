"""QR codes: encoding credentials into pictures and reading every QR code out of a picture.

This module knows images and text only: no cryptography, no DCC. It never prints.
It is the face the rest of vaxqr imports (``from .qr import to_png, decode_image``); the
work is done in two modules:

:mod:`vaxqr.qrencode`
    :func:`encode_matrix` and :class:`QrMatrix`, a NumPy encoder that keeps an ``HC1:``
    string in one alphanumeric segment at exactly the level asked for, and the renderers
    :func:`to_png`, :func:`to_svg` and :func:`to_image`.
:mod:`vaxqr.qrdecode`
    :func:`decode_image` and :func:`decode_one` (zxing-cpp first, then a ladder of
    preprocessings and zbar fallbacks), with the size guards on pictures.

The decoder is imported on first use, so encoding a credential loads neither it nor PIL,
zxing-cpp or pyzbar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .qrencode import (
    ALPHANUMERIC_CHARS,
    DEFAULT_BORDER,
    DEFAULT_SCALE,
    QrMatrix,
    encode_matrix,
    is_alphanumeric,
    to_image,
    to_png,
    to_svg,
)

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .qrdecode import Engine, QrResult

__all__ = [
    "ALPHANUMERIC_CHARS",
    "DEFAULT_BORDER",
    "DEFAULT_SCALE",
    "QrMatrix",
    "decode_image",
    "decode_one",
    "encode_matrix",
    "is_alphanumeric",
    "to_image",
    "to_png",
    "to_svg",
    "zbar_available",
    "zbar_binary",
]



def decode_image(
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | PILImage.Image,
    *,
    min_codes: int = 1,
    engines: Sequence[Engine] = ("zxing", "zbar"),
) -> list[QrResult]:
    """Every QR code in a picture (see :func:`vaxqr.qrdecode.decode_image`)."""
    from .qrdecode import decode_image as decode

    return decode(source, min_codes=min_codes, engines=engines)


def decode_one(
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | PILImage.Image,
) -> QrResult:
    """The first QR code found in a picture."""
    from .qrdecode import decode_one as decode

    return decode(source)


def zbar_available() -> bool:
    """True when zbar (pyzbar + libzbar) can be used as the fallback decoder."""
    from .qrdecode import zbar_available as available

    return available()


def zbar_binary() -> bool:
    """True when zbar returns raw bytes (its ``binary`` option exists, libzbar >= 0.23)."""
    from .qrdecode import zbar_binary as binary

    return binary()
