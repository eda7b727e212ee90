"""Tests for vaxqr.card: glyph coverage, layout bounds, the pasted QR, PNG and PDF output."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import unicodedata
import zlib
from dataclasses import replace

import numpy as np
import pytest
import segno
import zxingcpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from vaxqr import card
from vaxqr.card import (
    CARD_DPI,
    CARD_SIZE_PX,
    CardData,
    CardImage,
    compose_card,
    find_fonts,
    missing_glyphs,
    render_card,
)
from vaxqr.errors import StorageError, ValidationError

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
VOWELS = "aăâeêioôơuưy"
TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")  # huyền sắc ngã hỏi nặng


def vietnamese_letters() -> str:
    """Every precomposed Vietnamese letter, lower and upper case (134 of them)."""
    lower = {unicodedata.normalize("NFC", v + t) for v in VOWELS for t in TONES} | {"đ"}
    lower = {c for c in lower if len(c) == 1 and not c.isascii()}
    return "".join(sorted(lower | {c.upper() for c in lower}))


def hc1_text(length: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return "HC1:" + "".join(rng.choice(BASE45) for _ in range(length - 4))


def qr_pil(text: str, *, scale: int = 4, border: int = 4) -> Image.Image:
    """A clean QR picture (mode L) of ``text`` made with segno, error correction Q."""
    q = segno.make(text, error="q", micro=False)
    arr = np.array(list(q.matrix_iter(scale=scale, border=border)), dtype=bool)
    return Image.fromarray(np.where(arr, 0, 255).astype(np.uint8))


def sample(**changes: object) -> CardData:
    data = CardData(
        full_name="Nguyễn Thị Thanh Hương",
        dob="1990-05-17",
        dose=2,
        doses=2,
        vaccine="Comirnaty (Pfizer-BioNTech)",
        vaccination_date="2021-10-01",
        commune="UBND phường Vĩnh Thanh Vân",
        province="tỉnh Kiên Giang",
        uvci="URN:UVCI:01:VN:91/30850/000123#Q",
        valid_until="2022-10-01",
    )
    return replace(data, **changes)  # type: ignore[arg-type]


HC1 = hc1_text(560)
QR = qr_pil(HC1)


def decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image)]


def inside(box: tuple[int, int, int, int], area: tuple[int, int, int, int]) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and box[2] <= area[2] and box[3] <= area[3]


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_bounds(ci: CardImage) -> None:
    """All text on the card, clear of the QR and its quiet zone; field text in its column."""
    width, height = CARD_SIZE_PX
    margin = card._MARGIN - 10
    assert ci.image.size == (width, height)
    assert ci.text_boxes
    assert inside(ci.qr_box, (margin, margin, width - margin, height - margin))
    body = 0
    for box in ci.text_boxes:
        assert inside(box, (margin, margin, width - margin, height - margin)), box
        assert not overlaps(box, ci.qr_box), (box, ci.qr_box)
        title_or_footer = box[3] <= ci.text_area[1] or box[1] >= ci.text_area[3]
        qr_caption = box[0] >= ci.qr_box[0] and box[1] >= ci.qr_box[3]
        if not (title_or_footer or qr_caption):
            assert inside(box, ci.text_area), (box, ci.text_area)
            body += 1
    assert body >= 16  # eight labels and at least eight values


# ---------------------------------------------------------------------------------------
# Glyphs
# ---------------------------------------------------------------------------------------


def test_vietnamese_alphabet_has_134_precomposed_letters() -> None:
    letters = vietnamese_letters()
    assert len(letters) == 134
    assert "đ" in letters and "Đ" in letters and "ự" in letters and "Ỹ" in letters


@pytest.mark.parametrize("which", [0, 1], ids=["regular", "bold"])
def test_font_has_every_vietnamese_letter(which: int) -> None:
    path = find_fonts()[which]
    text = vietnamese_letters() + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert missing_glyphs(text, path) == set()


def test_default_font_is_dejavu_sans_regular() -> None:
    assert find_fonts()[0].endswith("/DejaVuSans.ttf")
    assert missing_glyphs(vietnamese_letters()) == set()


@pytest.mark.parametrize("which", [0, 1], ids=["regular", "bold"])
def test_font_has_every_card_label(which: int) -> None:
    fixed = [
        card._TITLE_VI,
        card._TITLE_EN,
        card._DEMO_TEXT,
        card._DEMO_TEXT_VI,
        *card._FOOTER,
        *card._QR_CAPTION,
        "0123456789/:#…–",
    ]
    fixed += [s for pair in card._LABELS.values() for s in pair]
    assert missing_glyphs("".join(fixed), find_fonts()[which]) == set()


@pytest.mark.parametrize("ch", ["中", "\U0010fffd", "\U00020000", "\x07", "\u0378"])
def test_missing_glyph_is_detected(ch: str) -> None:
    assert missing_glyphs(f"Nguyễn {ch} An") == {ch}


def test_space_and_nfd_marks_are_not_missing() -> None:
    assert missing_glyphs(" ") == set()
    assert missing_glyphs(unicodedata.normalize("NFD", "Nguyễn Đức Thắng")) == set()


def test_no_font_is_a_storage_error_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(card, "FONT_CANDIDATES", ("/nonexistent/fonts",))
    monkeypatch.delenv("VAXQR_FONT_DIR", raising=False)
    find_fonts.cache_clear()
    try:
        with pytest.raises(StorageError) as info:
            find_fonts()
        assert info.value.hint is not None and "fonts-dejavu-core" in info.value.hint
        with pytest.raises(StorageError):
            render_card(sample(), QR)
    finally:
        find_fonts.cache_clear()  # the next call, unpatched, finds the real fonts again


def test_font_dir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    regular, _bold = find_fonts()
    folder = regular.rsplit("/", 1)[0]
    monkeypatch.setenv("VAXQR_FONT_DIR", folder)
    monkeypatch.setattr(card, "FONT_CANDIDATES", ())
    find_fonts.cache_clear()
    try:
        assert find_fonts() == (regular, _bold)
    finally:
        find_fonts.cache_clear()


# ---------------------------------------------------------------------------------------
# PNG, QR, layout
# ---------------------------------------------------------------------------------------


def test_png_size_dpi_and_qr_round_trip() -> None:
    check_bounds(compose_card(sample(), QR))
    png = render_card(sample(), QR)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.size == CARD_SIZE_PX == (1748, 1240)
        assert im.info["dpi"] == pytest.approx((CARD_DPI, CARD_DPI), abs=0.01)
        im.load()
        assert decode(im) == [HC1]


def test_png_and_pdf_hold_exactly_the_composed_pixels() -> None:
    """The card's own PNG writer is lossless: Pillow reads back every composed pixel, and
    the PDF's image stream inflates to the same rows (filter byte 0, then the palette
    indices), shown through the same palette."""
    image = compose_card(sample(demo=True), QR).image
    composed, palette = np.asarray(image), image.getpalette()
    with Image.open(io.BytesIO(render_card(sample(demo=True), QR))) as im:
        assert im.mode == "P" and im.getpalette() == palette
        assert np.array_equal(np.asarray(im), composed)
    pdf = render_card(sample(demo=True), QR, fmt="pdf")
    head, rest = pdf.split(b"/Subtype /Image", 1)[1].split(b"stream\n", 1)
    hival, lookup = head.split(b"/Indexed /DeviceRGB ")[1].split(b">]")[0].split(b" <")
    assert bytes.fromhex(lookup.decode()) == bytes(palette[: 3 * (int(hival) + 1)])
    length = int(head.split(b"/Length ")[1].split(b" ")[0])
    rows = np.frombuffer(zlib.decompress(rest[:length]), np.uint8)
    rows = rows.reshape(CARD_SIZE_PX[1], 1 + CARD_SIZE_PX[0])
    assert not rows[:, 0].any()
    assert np.array_equal(rows[:, 1:], composed)


@pytest.mark.parametrize(
    ("length", "scale", "border"),
    [(40, 1, 0), (300, 3, 4), (560, 4, 4), (560, 7, 2), (900, 2, 10), (1400, 4, 4)],
)
def test_qr_is_square_sized_and_scannable(length: int, scale: int, border: int) -> None:
    text = hc1_text(length, seed=length)
    source = qr_pil(text, scale=scale, border=border)
    ci = compose_card(sample(), source)
    version = segno.make(text, error="q", micro=False).version
    assert ci.modules == 17 + 4 * int(version)
    p = ci.module_px
    side_mm = ci.modules * p / CARD_DPI * 25.4
    if not 35 <= side_mm <= 45:  # no whole number of pixels per module lands in range
        assert side_mm < 35 and ci.modules * (p + 1) / CARD_DPI * 25.4 > 45
    # the quiet zone is 4 modules of pure white, the symbol an exact p-times enlargement
    x0, y0, x1, y1 = ci.qr_box
    assert x1 - x0 == y1 - y0 == (ci.modules + 8) * p
    block = np.asarray(ci.image.convert("L").crop(ci.qr_box)) < 128
    q = 4 * p
    assert not block[:q].any() and not block[-q:].any()
    assert not block[:, :q].any() and not block[:, -q:].any()
    grid = block[q + p // 2 : -q : p, q + p // 2 : -q : p]
    assert np.array_equal(np.repeat(np.repeat(grid, p, 0), p, 1), block[q:-q, q:-q])
    expected = np.array(segno.make(text, error="q", micro=False).matrix, dtype=bool)
    assert np.array_equal(grid, expected)
    check_bounds(ci)
    assert decode(ci.image) == [text]


def test_typical_credential_diagonal_within_60_mm() -> None:
    ci = compose_card(sample(), QR)
    side_mm = ci.modules * ci.module_px / CARD_DPI * 25.4
    assert 35 <= side_mm and side_mm * 2**0.5 <= 60


def test_vaxqr_qr_image_is_accepted() -> None:
    qr = pytest.importorskip("vaxqr.qr")
    ci = compose_card(sample(), qr.to_image(HC1))
    assert decode(ci.image) == [HC1]


def test_rgb_and_rgba_sources_are_accepted() -> None:
    rgba = QR.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(np.asarray(QR) < 128, 255, 0).astype(np.uint8)))
    for source in (QR.convert("RGB"), QR.convert("1"), rgba):
        assert decode(compose_card(sample(), source).image) == [HC1]


@pytest.mark.parametrize(
    "source",
    [
        Image.new("L", (200, 200), 255),
        QR.resize((QR.width * 137 // 100,) * 2, Image.Resampling.BILINEAR),
        Image.new("L", (50, 30), 0),
    ],
    ids=["blank", "resampled", "not-square"],
)
def test_unclean_qr_picture_is_refused(source: Image.Image) -> None:
    with pytest.raises(ValidationError):
        compose_card(sample(), source)


def test_dates_are_formatted() -> None:
    assert card._display_date("2021-10-01", "x") == "01/10/2021"
    assert card._display_date("2022-10-01T00:00:00+07:00", "x") == "01/10/2022"
    assert card._display_date("1990-05", "dob", partial=True) == "05/1990"
    assert card._display_date("1990", "dob", partial=True) == "1990"
    for bad in ("2021-02-30", "01/10/2021", "1990", "", "1990-13"):
        with pytest.raises(ValidationError):
            card._display_date(bad, "x")


LONG_NAMES = [
    "Nguyễn Phước Bảo Thiên Hương Quỳnh Như Ngọc Diễm Thùy Trang Hoàng Thị " * 6,
    "Tôn Nữ" + "Ư" * 300,
    "Đặng Ngọc Uyên Phương Thảo Nguyên Khánh Linh",
]


@pytest.mark.parametrize("demo", [False, True])
@pytest.mark.parametrize("name", LONG_NAMES)
def test_long_name_stays_inside(name: str, demo: bool) -> None:
    long_commune = "UBND thị trấn Nông trường Phong Hải Đông Bắc Tây Nam " * 5
    ci = compose_card(
        sample(
            full_name=name,
            commune=long_commune,
            vaccine="Vaxzevria " * 20,
            uvci="X" * 200,
            province="Thành phố Hồ Chí Minh " * 4,
            demo=demo,
        ),
        QR,
    )
    check_bounds(ci)
    assert decode(ci.image) == [HC1]
    assert render_card(sample(full_name=name), QR).startswith(b"\x89PNG")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(alphabet=vietnamese_letters() + "abcdeghiklmnopqrstuvxy", min_size=1, max_size=25),
        min_size=1,
        max_size=30,
    )
)
def test_any_vietnamese_name_fits(words: list[str]) -> None:
    check_bounds(compose_card(sample(full_name=" ".join(words)), QR))


def red_pixels(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as im:
        a = np.asarray(im.convert("RGB")).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return int(((r > 150) & (g < 80) & (b < 90)).sum())


def test_demo_band() -> None:
    normal, demo = render_card(sample(), QR), render_card(sample(demo=True), QR)
    assert red_pixels(normal) == 0
    assert red_pixels(demo) > 100_000  # a solid band, not a speck
    with Image.open(io.BytesIO(demo)) as im:
        assert decode(im) == [HC1]


def test_nfd_name_renders_like_nfc() -> None:
    nfd = unicodedata.normalize("NFD", sample().full_name)
    a = compose_card(sample(full_name=nfd), QR).image
    b = compose_card(sample(), QR).image
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "Nguyễn 中 An"},
        {"full_name": "Lê Văn\x00Tám"},
        {"commune": "UBND xã 東"},
        {"province": "tỉnh \U0010fffd"},
        {"vaccine": "Pfizer 疫苗"},
    ],
)
def test_unprintable_character_is_refused(changes: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="cannot print"):
        render_card(sample(**changes), QR)


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "   "},
        {"dose": 0},
        {"doses": True},
        {"dob": "17/05/1990"},
        {"vaccination_date": "2021-02-29"},
        {"valid_until": "soon"},
    ],
)
def test_bad_data_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        render_card(sample(**changes), QR)


def test_partial_dob_and_unknown_format() -> None:
    assert render_card(sample(dob="1990"), QR).startswith(b"\x89PNG")
    with pytest.raises(ValidationError):
        render_card(sample(), QR, fmt="jpeg")


def test_card_data_is_frozen_and_keyword_only() -> None:
    data = sample()
    with pytest.raises(AttributeError):
        data.full_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CardData("a", "1990-01-01", 1, 2, "v", "2021-01-01", "c", "p", "u", "2022-01-01")  # type: ignore[call-arg]


# ---------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------


def test_pdf_structure_and_determinism() -> None:
    pdf = render_card(sample(), QR, fmt="pdf")
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/FlateDecode" in pdf and b"/DCTDecode" not in pdf
    assert b"/MediaBox [0 0 419.52 297.60]" in pdf
    assert render_card(sample(), QR, fmt="pdf") == pdf
    # the xref offsets point at the objects
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    rows = pdf[start:].split(b"\n")[3:9]
    for i, row in enumerate(rows, start=1):
        off = int(row[:10])
        assert pdf[off:].startswith(f"{i} 0 obj".encode())


@pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript not installed")
def test_pdf_rasterises_and_qr_decodes(tmp_path: pytest.TempPathFactory) -> None:
    pdf = render_card(sample(demo=True), QR, fmt="pdf")
    out = subprocess.run(
        [
            "gs",
            "-q",
            "-dSAFER",
            "-dBATCH",
            "-dNOPAUSE",
            "-sDEVICE=png16m",
            "-r300",
            "-sOutputFile=-",
            "-",
        ],
        input=pdf,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with Image.open(io.BytesIO(out)) as im:
        assert abs(im.width - CARD_SIZE_PX[0]) <= 2 and abs(im.height - CARD_SIZE_PX[1]) <= 2
        assert decode(im) == [HC1]
    png = render_card(sample(demo=True), QR)
    assert red_pixels(out) > 0.9 * red_pixels(png)


def test_reused_row_buffer_is_per_thread_and_per_size() -> None:
    """The encoder keeps one row buffer per thread: cards rendered in threads, and a
    picture of another size in between, come out as when each is rendered alone."""
    from concurrent.futures import ThreadPoolExecutor

    cards = [(sample(demo=i % 2 == 1, full_name=name), QR) for i, name in enumerate(LONG_NAMES)]
    alone = [render_card(d, q) for d, q in cards]
    small = card._rows(11, 37)
    small[:, 1:] = 7
    rows = np.frombuffer(zlib.decompress(card._raster(small)), np.uint8).reshape(11, 1 + 37)
    assert not rows[:, 0].any() and (rows[:, 1:] == 7).all()
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(lambda dq: render_card(*dq), cards * 2)) == alone * 2


def painted(c: card._Canvas) -> np.ndarray:
    """What a canvas paints, as RGB."""
    pixels = np.empty(c.size[::-1], np.uint8)
    palette = c.paint(pixels)
    return palette[pixels].astype(int)


def pillow_rgb(c: card._Canvas) -> np.ndarray:
    """The same canvas drawn by Pillow alone in RGB (ImageDraw.text, the QR pasted as an L
    picture): the card as it was rendered before the palette, the reference."""
    im = Image.new("RGB", c.size, card._WHITE)
    draw = ImageDraw.Draw(im)
    for kind, box, colour, width, radius in c.shapes:
        if kind == "rounded":
            draw.rounded_rectangle(box, radius=radius, outline=colour, width=width)
        elif kind == "line":
            draw.line(box, fill=colour, width=width)
        else:
            draw.rectangle(box, fill=colour)
    for op in c.ops:
        if isinstance(op, card._Qr):
            pixels = np.where(np.pad(op.grid, 4), 0, 255).astype(np.uint8)
            side = pixels.shape[0] * op.p
            im.paste(Image.fromarray(pixels).resize((side, side), Image.Resampling.NEAREST),
                     op.xy)
        else:
            draw.text(op.xy, op.text, font=op.font, fill=op.fill, anchor=op.anchor)
    return np.asarray(im).astype(int)


@pytest.mark.parametrize("anchor", ["la", "ma", "mm"])
def test_cached_text_draws_what_imagedraw_draws(anchor: str) -> None:
    """The canvas draws each line from a coverage picture cached per process, through the
    card's 256 colours: within 3 of 255 per channel of ImageDraw.text (1 on a card, see
    below; here lines overlap one another, the colour under the ink already one of the
    256, which a card's lines never do), and the same ink
    boxes as textbbox, at fractional positions, partly off the canvas, over white, over text
    already drawn and (white) over the demo red, whether the picture is cached or not."""
    rng = random.Random(anchor)
    regular, bold = find_fonts()
    texts = [card._TITLE_VI, "Nguyễn Thị Thanh Hương", "Ỹ ự đ Đ", "01/10/2021", "j", " ", ""]
    # grey inks over white and over one another, white over the demo red: as on a card
    ours = card._Canvas((2000, 300), card._DEMO_RED)
    ours.rectangle((1700, 0, 1999, 299), card._DEMO_RED)
    boxes = []
    for i in range(60):
        text = rng.choice(texts)
        font = card._font(rng.choice((regular, bold)), rng.choice((24, 27, 44, 60)))
        x = rng.choice((-5, 0, 1, 64.5)) + rng.randrange(400) + rng.randrange(128) / 128
        fill = rng.choice((card._INK, card._LABEL_VI, card._LABEL_EN))
        if i % 4 == 3:
            x, fill = 1760 + rng.randrange(100), card._WHITE  # white over red
        xy = (x, rng.randrange(-3, 250) + rng.randrange(4) / 4)
        if i == 30:
            card._text_mask.cache_clear()
            card._text_tile.cache_clear()
        ours.text(xy, text, font, fill, anchor=anchor)
        if text.strip():
            b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(xy, text, font=font, anchor=anchor)
            boxes.append((int(np.floor(b[0])), int(np.floor(b[1])), int(np.ceil(b[2])),
                          int(np.ceil(b[3]))))
    assert np.abs(painted(ours) - pillow_rgb(ours)).max() <= 3
    assert ours.boxes == boxes


@pytest.mark.parametrize("demo", [False, True], ids=["card", "demo"])
@pytest.mark.parametrize("name", ["Nguyễn Thị Ánh Hồng", LONG_NAMES[0]], ids=["short", "long"])
def test_card_is_within_one_level_of_pillow_rgb(demo: bool, name: str) -> None:
    """The card in 256 colours against the same layout drawn by Pillow in RGB (the card
    before the palette): every pixel within 1 of 255 per channel, flat colours and the QR
    code exact, and its QR code reads the same credential."""
    c, _ci = card._layout(sample(full_name=name, demo=demo), QR)
    ours, theirs = painted(c), pillow_rgb(c)
    diff = np.abs(ours - theirs).max(axis=2)
    assert diff.max() <= 1
    assert diff.mean() < 0.02  # only some antialiased edges move, by one level
    assert decode(compose_card(sample(full_name=name, demo=demo), QR).image) == [HC1]
    qr = next(op for op in c.ops if isinstance(op, card._Qr))
    side = (qr.grid.shape[0] + 8) * qr.p
    x, y = qr.xy
    assert not diff[y : y + side, x : x + side].any()


@pytest.mark.parametrize("accent", [card._ACCENT, card._DEMO_RED], ids=["card", "demo"])
def test_palette_holds_every_blend_a_card_draws(accent: tuple[int, int, int]) -> None:
    """Every ink over the colour a card draws it on (the greys and the accent over white,
    white over the demo band), at every coverage: the palette entry chosen is within 1 of
    255 per channel of Pillow's blend, and a grey stays a grey."""
    palette = card._palette(accent).astype(int)
    assert len(palette) <= 256
    white, solid = card._index(accent, card._WHITE), card._index(accent, accent)
    pairs = [(ink, white) for ink in (card._INK, card._LABEL_VI, card._LABEL_EN, accent)]
    for ink, bg in [*pairs, (card._WHITE, solid)]:
        exact = card._blend(palette[bg], np.array(ink), np.arange(256.0))
        got = palette[card._ink_lut(accent, ink, bg)]
        assert np.abs(exact - got).max() <= 1, ink
        if len(set(ink)) == 1 and bg == white:  # a grey over white stays a grey
            assert (got == got[:, :1]).all()
    for colour in (card._WHITE, card._INK, card._RULE, accent, (0, 0, 0)):
        assert tuple(palette[card._index(accent, colour)]) == colour


def test_qr_matrix_gives_the_card_a_picture_of_it_gives() -> None:
    """The encoder's module matrix (what a batch passes, no picture made and read back)
    draws the same card, byte for byte, as a picture of the same symbol."""
    from vaxqr.qrencode import encode_matrix

    matrix = encode_matrix(HC1)
    for fmt in ("png", "pdf"):
        assert render_card(sample(), matrix, fmt=fmt) == render_card(
            sample(), matrix.to_image(scale=3), fmt=fmt)
    with Image.open(io.BytesIO(render_card(sample(), matrix))) as im:
        assert decode(im) == [HC1]


def test_shared_head_rows_are_reused_only_when_equal() -> None:
    """_raster deflates the first rows once for the pictures that share them: every
    stream still inflates to its own picture's rows, whatever the hint says."""
    rng = np.random.default_rng(3)
    base = np.zeros((40, 1 + 30), np.uint8)
    base[:, 1:] = 1
    base[:, 4] = 6
    pictures = []
    for i in range(6):
        a = base.copy()
        a[10:, 1:] = rng.integers(0, 256, (30, 30), dtype=np.uint8)
        if i % 3 == 2:
            a[0, 1] = i  # a different head
        pictures.append(a)
    for hint in (10, 10, 12, 1, 39):
        for a in pictures:
            rows = np.frombuffer(zlib.decompress(card._raster(a, hint)), np.uint8)
            assert np.array_equal(rows.reshape(a.shape), a)
    assert len(card._HEADS) <= card._HEADS_MAX
