"""Seeded generator of degraded QR pictures, for the tests and the QR benchmark.

Each kind of degradation is a function ``(payload, rng) -> PIL.Image.Image`` that renders the
payload as a QR code the way a checkpoint would receive it: a photo of paper or a screen with
non-integer module sizes, then the degradation the kind is named after. Only PIL and NumPy.

``KINDS`` maps each name to its function; ``corpus(n_per_kind, seed)`` yields
``(kind, index, image, expected_payloads)``. Every image is determined by the seed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vaxqr import qr

Rng = np.random.Generator
Kind = Callable[[str, Rng], Image.Image]

#: A synthetic CCCD card payload (UTF-8, byte mode), as on the chip-based citizen ID card.
CCCD_PAYLOAD = "091203001234||Nguyễn Thị Ánh Hồng|01021999|Nữ|Rạch Giá, Kiên Giang|01122021"


def hc1_like(rng: Rng, length: int = 560) -> str:
    """A credential-sized ``HC1:`` string of random Base45 characters (same QR statistics)."""
    alphabet = np.frombuffer(qr.ALPHANUMERIC_CHARS.encode(), dtype=np.uint8)
    body = alphabet[rng.integers(0, 45, size=length - 4)].tobytes().decode()
    return "HC1:" + body


# --- rendering helpers -------------------------------------------------------------------


def _symbol(payload: str, module: float, rng: Rng, ink: int = 20, paper: int = 235) -> Image.Image:
    """The code with its quiet zone at ``module`` pixels per module (non-integer allowed).

    Rendered at 8 px per module, then resampled with a box filter and a random sub-pixel
    offset, as a camera or a scaled screenshot would.
    """
    matrix = qr.encode_matrix(payload)
    hi = 8
    light = matrix.to_array(scale=hi, border=4)
    arr = np.where(light, paper, ink).astype(np.uint8)
    img = Image.fromarray(arr)
    side = max(8, round(arr.shape[0] * module / hi))
    off_x, off_y = rng.uniform(0, hi / 2, size=2)
    box = (off_x, off_y, arr.shape[1] - hi / 2 + off_x, arr.shape[0] - hi / 2 + off_y)
    return img.resize((side, side), Image.Resampling.BOX, box=box)


def _canvas(img: Image.Image, rng: Rng, margin: float = 0.15, paper: int = 235) -> Image.Image:
    w, h = img.size
    mx, my = (int(w * margin * rng.uniform(0.5, 1.5)) for _ in range(2))
    out = Image.new("L", (w + 2 * mx, h + 2 * my), paper)
    out.paste(img, (mx, my))
    return out


def _paper_noise(img: Image.Image, rng: Rng, sigma: float = 4.0) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    noisy = arr + rng.normal(0, sigma, arr.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _camera(img: Image.Image, rng: Rng, *, jpeg: bool = True) -> Image.Image:
    """What any phone adds: slight defocus, sensor noise, and often JPEG (quality 50-90)."""
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    img = _paper_noise(img, rng, rng.uniform(2.0, 6.0))
    if jpeg and rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(50, 91)))
        buf.seek(0)
        img = Image.open(buf)
        img.load()
    return img


def _homography(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points ``dst`` to ``src``."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist())


def _warp(img: Image.Image, src: np.ndarray, dst: np.ndarray, fill: int) -> Image.Image:
    x0, y0 = np.floor(dst.min(axis=0)) - 20
    x1, y1 = np.ceil(dst.max(axis=0)) + 20
    shifted = dst - [x0, y0]
    size = (int(x1 - x0), int(y1 - y0))
    return img.transform(
        size,
        Image.Transform.PERSPECTIVE,
        _homography(src, shifted),
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill,
    )


# --- the kinds ---------------------------------------------------------------------------


def rotation(payload: str, rng: Rng) -> Image.Image:
    """Any angle, 3-5 px per module."""
    img = _canvas(_symbol(payload, rng.uniform(3.0, 5.0), rng), rng, paper=235)
    img = img.rotate(
        rng.uniform(0, 360), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=235
    )
    return _camera(img, rng)


def perspective(payload: str, rng: Rng) -> Image.Image:
    """The paper tilted 25-45 degrees away from the camera about a random axis."""
    sym = _canvas(_symbol(payload, rng.uniform(3.0, 5.0), rng), rng, margin=0.1)
    w, h = sym.size
    tilt = math.radians(rng.uniform(25, 45))
    axis = rng.uniform(0, 2 * math.pi)
    spin = math.radians(rng.uniform(-30, 30))
    # Corners in 3-D (centred), rotated about an in-plane axis, then a pinhole projection.
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    pts = np.c_[corners - [w / 2, h / 2], np.zeros(4)]
    ux, uy = math.cos(axis), math.sin(axis)
    c, s = math.cos(tilt), math.sin(tilt)
    rot = np.array(
        [
            [c + ux * ux * (1 - c), ux * uy * (1 - c), uy * s],
            [uy * ux * (1 - c), c + uy * uy * (1 - c), -ux * s],
            [-uy * s, ux * s, c],
        ]
    )
    pts = pts @ rot.T
    focal = max(w, h) * rng.uniform(1.2, 2.0)
    proj = pts[:, :2] * (focal / (focal + pts[:, 2:3]))
    cs, sn = math.cos(spin), math.sin(spin)
    proj = proj @ np.array([[cs, -sn], [sn, cs]]).T
    proj -= proj.min(axis=0)
    return _camera(_warp(sym, corners, proj, fill=235), rng)


def small_modules(payload: str, rng: Rng) -> Image.Image:
    """1.8-2.4 px per module (a credential at the edge of a wide photo or a thumbnail)."""
    return _camera(_canvas(_symbol(payload, rng.uniform(1.8, 2.4), rng), rng), rng)


def blur(payload: str, rng: Rng) -> Image.Image:
    """Out of focus: Gaussian blur of 0.3-0.6 module."""
    module = rng.uniform(4.0, 6.0)
    img = _canvas(_symbol(payload, module, rng), rng)
    img = img.filter(ImageFilter.GaussianBlur(module * rng.uniform(0.3, 0.6)))
    return _camera(img, rng)


def noise(payload: str, rng: Rng) -> Image.Image:
    """Low light sensor noise: Gaussian noise sigma 40-65 on a low-contrast print."""
    ink, paper = int(rng.integers(40, 70)), int(rng.integers(180, 215))
    img = _canvas(_symbol(payload, rng.uniform(3.5, 5.0), rng, ink=ink, paper=paper), rng,
                  paper=paper)  # fmt: skip
    return _camera(_paper_noise(img, rng, rng.uniform(40, 65)), rng)


def jpeg(payload: str, rng: Rng) -> Image.Image:
    """A chat-app forward: colour photo, 2.3-3.3 px per module, JPEG quality 20-40."""
    img = _camera(_canvas(_symbol(payload, rng.uniform(2.3, 3.3), rng), rng), rng, jpeg=False)
    tint = rng.uniform(0.8, 1.0, size=3)
    rgb = np.asarray(img, dtype=np.float32)[:, :, None] * tint
    color = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    color.save(buf, format="JPEG", quality=int(rng.integers(20, 41)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def lighting(payload: str, rng: Rng) -> Image.Image:
    """Uneven light: a shadow gradient down to 10-30% brightness plus a glare spot."""
    img = _canvas(_symbol(payload, rng.uniform(3.5, 5.0), rng), rng)
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx - w / 2) * math.cos(theta) + (yy - h / 2) * math.sin(theta)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    low = rng.uniform(0.10, 0.30)
    gain = low + (1 - low) * ramp
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    glare = 90 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.2 * max(h, w)) ** 2))
    arr = arr * gain + glare * rng.uniform(0.5, 1.5)
    return _camera(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), rng)


def inverted(payload: str, rng: Rng) -> Image.Image:
    """Light modules on a dark background (a dark-mode screenshot), slightly soft."""
    img = _canvas(_symbol(payload, rng.uniform(3.0, 5.0), rng), rng)
    img = Image.fromarray(255 - np.asarray(img))
    return _camera(img, rng)


def moire(payload: str, rng: Rng) -> Image.Image:
    """A photo of a screen: two interfering gratings of period 2.5-6 px, amplitude 60-110."""
    img = _canvas(_symbol(payload, rng.uniform(3.5, 5.0), rng), rng)
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(2):
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(2.5, 6.0)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period)
        arr = arr + rng.uniform(60, 110) / 2 * np.sin(phase)
    return _camera(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), rng)


def crease(payload: str, rng: Rng) -> Image.Image:
    """A folded paper: 1-3 crease lines across the code, each shading one side."""
    img = _canvas(_symbol(payload, rng.uniform(4.0, 5.5), rng), rng)
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):
        theta = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
        dist = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
        arr = np.where(dist > 0, arr * rng.uniform(0.7, 0.9), arr)
        width = rng.uniform(1.0, 3.0)
        line = np.exp(-(dist**2) / (2 * width**2))
        arr = arr + line * rng.choice([-1.0, 1.0]) * rng.uniform(60, 120)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return _camera(img, rng)


def clutter(payload: str, rng: Rng) -> Image.Image:
    """The code small in a busy scene (text, lines, boxes, blobs), tilted up to 20 degrees."""
    sym = _symbol(payload, rng.uniform(3.0, 4.5), rng)
    angle = rng.uniform(-20, 20)
    paper = Image.new("L", sym.size, 255).rotate(angle, Image.Resampling.BILINEAR, expand=True)
    sym = sym.rotate(angle, Image.Resampling.BILINEAR, expand=True, fillcolor=235)
    sw, sh = sym.size
    w, h = int(sw * rng.uniform(2.0, 2.8)), int(sh * rng.uniform(1.6, 2.2))
    scene = Image.new("L", (w, h), int(rng.integers(150, 230)))
    draw = ImageDraw.Draw(scene)
    for _ in range(int(rng.integers(60, 120))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        shade = int(rng.integers(0, 256))
        pick = rng.integers(0, 5)
        if pick == 0:
            draw.rectangle((x, y, x + int(rng.integers(5, 120)), y + int(rng.integers(5, 80))),
                           outline=shade, width=int(rng.integers(1, 4)))  # fmt: skip
        elif pick == 1:
            draw.line((x, y, int(rng.integers(0, w)), int(rng.integers(0, h))), fill=shade,
                      width=int(rng.integers(1, 5)))  # fmt: skip
        elif pick == 2:
            r = int(rng.integers(3, 40))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=shade)
        elif pick == 3:  # a line of "text"
            for k in range(int(rng.integers(5, 25))):
                cw = int(rng.integers(3, 9))
                draw.rectangle((x + k * (cw + 3), y, x + k * (cw + 3) + cw, y + 10), fill=shade)
        else:  # small squares, like a stray module grid
            s = int(rng.integers(2, 6))
            for _k in range(int(rng.integers(5, 30))):
                px, py = x + int(rng.integers(-30, 30)), y + int(rng.integers(-30, 30))
                draw.rectangle((px, py, px + s, py + s), fill=shade)
    px, py = int(rng.integers(0, w - sw)), int(rng.integers(0, h - sh))
    scene.paste(sym, (px, py), paper)
    return _camera(scene, rng)


def two_codes(payload: str, rng: Rng) -> Image.Image:
    """The credential beside a CCCD card's QR (UTF-8 byte mode), each slightly tilted."""
    hc1 = _symbol(payload, rng.uniform(3.0, 4.5), rng)
    card = _symbol(CCCD_PAYLOAD, rng.uniform(3.0, 5.0), rng, ink=30, paper=225)
    hc1 = hc1.rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, expand=True, fillcolor=235)
    card = card.rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, expand=True,
                       fillcolor=225)  # fmt: skip
    parts = [hc1, card] if rng.random() < 0.5 else [card, hc1]
    gap = int(rng.integers(10, 60))
    w = parts[0].width + parts[1].width + gap + 40
    h = max(p.height for p in parts) + 40
    scene = Image.new("L", (w, h), 200)
    x = 20
    for p in parts:
        scene.paste(p, (x, 20 + int(rng.integers(0, h - 40 - p.height + 1))))
        x += p.width + gap
    return _camera(scene, rng)


KINDS: dict[str, Kind] = {
    "rotation": rotation,
    "perspective": perspective,
    "small_modules": small_modules,
    "blur": blur,
    "noise": noise,
    "jpeg": jpeg,
    "lighting": lighting,
    "inverted": inverted,
    "moire": moire,
    "crease": crease,
    "clutter": clutter,
    "two_codes": two_codes,
}


def expected(kind: str, payload: str) -> set[str]:
    """The payloads a reader must find in an image of ``kind``."""
    return {payload, CCCD_PAYLOAD} if kind == "two_codes" else {payload}


def corpus(
    n_per_kind: int, seed: int = 2021, kinds: dict[str, Kind] | None = None
) -> Iterator[tuple[str, int, Image.Image, set[str]]]:
    """``(kind, index, image, expected payloads)`` for ``n_per_kind`` images of each kind."""
    for k_index, (name, fn) in enumerate((kinds or KINDS).items()):
        for i in range(n_per_kind):
            rng = np.random.default_rng([seed, k_index, i])
            payload = hc1_like(rng, int(rng.integers(480, 640)))
            yield name, i, fn(payload, rng), expected(name, payload)
