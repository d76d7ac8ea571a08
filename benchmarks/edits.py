"""The image edits of the matching-quality benchmark: what re-uploads and evasions do to a photo.

Every edit is a pure function ``(PIL RGB image, numpy Generator) -> PIL RGB image``; the
generator (seeded per photo and edit by the caller) drives the only randomness (pad colours,
overlay positions, noise), so a run is reproducible. Geometry conventions: ``crop_centre_10``
removes 10% of the width and of the height, half from each side; ``crop_offcentre_10``
removes the same amount from the right and bottom only; ``letterbox_black_20`` adds black bars
above and below so that they make up 20% of the new height; ``pad_colour_20`` adds a frame of
one random colour on all four sides, making up 20% of each new dimension.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


def identity(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.copy()


def jpeg(quality: int) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        return Image.open(buf).convert("RGB")
    return edit


def resize(scale: float) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    return edit


def messaging_app(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What chat apps do to a sent photo: longest side at most 1280, JPEG ~q80."""
    w, h = im.size
    if max(w, h) > 1280:
        s = 1280 / max(w, h)
        im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    return jpeg(80)(im, rng)


def crop(fraction: float, *, centred: bool) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        dw, dh = round(w * fraction), round(h * fraction)
        if centred:
            return im.crop((dw // 2, dh // 2, w - (dw - dw // 2), h - (dh - dh // 2)))
        return im.crop((0, 0, w - dw, h - dh))
    return edit


def crop_at(fraction: float, x: float, y: float) -> Edit:
    """Removes ``fraction`` of the width and of the height; the kept part sits at (x, y) in
    0..1 (0: touching the left/top edge, 1: touching the right/bottom edge)."""
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        kw, kh = w - round(w * fraction), h - round(h * fraction)
        left, top = round((w - kw) * x), round((h - kh) * y)
        return im.crop((left, top, left + kw, top + kh))
    return edit


def extend_reflect(fraction: float, x: float = 0.5, y: float = 0.5) -> Edit:
    """The upload shows more than the banked picture: the picture grows by ``fraction`` of
    each side with mirrored content (a stand-in for the uncropped original when the survivor
    banked a crop of it), the picture sitting at (x, y) in 0..1 of the new canvas."""
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(im)
        h, w = a.shape[:2]
        eh, ew = round(h * fraction), round(w * fraction)
        top, left = round(eh * y), round(ew * x)
        pad = ((top, eh - top), (left, ew - left), (0, 0))
        return Image.fromarray(np.pad(a, pad, mode="symmetric"))
    return edit


def letterbox(fraction: float, colour: tuple[int, int, int] = (0, 0, 0)) -> Edit:
    """Bars above and below making up ``fraction`` of the new height."""
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        new_h = round(h / (1 - fraction))
        out = Image.new("RGB", (w, new_h), colour)
        out.paste(im, (0, (new_h - h) // 2))
        return out
    return edit


def pad_colour(fraction: float) -> Edit:
    """A frame of one random colour on all sides, ``fraction`` of each new dimension."""
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        w, h = im.size
        nw, nh = round(w / (1 - fraction)), round(h / (1 - fraction))
        out = Image.new("RGB", (nw, nh), colour)
        out.paste(im, ((nw - w) // 2, (nh - h) // 2))
        return out
    return edit


def transpose(method: Image.Transpose) -> Edit:
    return lambda im, rng: im.transpose(method)


def rotate(degrees: float) -> Edit:
    """Rotate about the centre, same canvas, black corners (what a tilted re-photo or a
    rotate tool without auto-crop gives)."""
    return lambda im, rng: im.rotate(degrees, resample=Image.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def enhance(kind: str, factor: float) -> Edit:
    cls = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast}[kind]
    return lambda im, rng: cls(im).enhance(factor)


def gamma(g: float) -> Edit:
    lut = [min(255, round(255 * (i / 255) ** g)) for i in range(256)] * 3
    return lambda im, rng: im.point(lut)


def blur(radius: float) -> Edit:
    return lambda im, rng: im.filter(ImageFilter.GaussianBlur(radius))


def noise(sigma: float) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(im, dtype=np.float32)
        a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
        return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))
    return edit


def greyscale(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def _font(size: int) -> ImageFont.ImageFont:
    try:  # Pillow >= 10.1 ships a scalable default font; no font files are fetched
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - older Pillow: fixed bitmap font
        return ImageFont.load_default()


WORDS = ("look at this", "lol", "omg", "new pic", "no way", "for you", "throwback", "2024")


def caption_banner(fraction: float = 0.15, *, top: bool = False, colour: tuple[int, int, int] = (255, 255, 255),
                   ink: tuple[int, int, int] = (0, 0, 0)) -> Edit:
    """A meme-style caption: a white banner over the bottom ``fraction`` with black text
    (``top``: over the top instead; ``colour``/``ink``: banner and text colours)."""
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = im.copy()
        w, h = out.size
        bh = round(h * fraction)
        y0 = 0 if top else h - bh
        d = ImageDraw.Draw(out)
        d.rectangle((0, y0, w, y0 + bh), fill=colour)
        text = " ".join(rng.choice(WORDS, size=2))
        d.text((w * 0.05, y0 + bh * 0.2), text, fill=ink, font=_font(max(8, round(bh * 0.6))))
        return out
    return edit


def text_overlay(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Two lines of outlined text across the picture (a watermark or a caption on the photo)."""
    out = im.copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    font = _font(max(10, h // 12))
    for k in range(2):
        text = " ".join(rng.choice(WORDS, size=2)).upper()
        xy = (rng.uniform(0.02, 0.3) * w, (0.15 + 0.55 * k + rng.uniform(0, 0.1)) * h)
        d.text(xy, text, fill=(255, 255, 255), font=font, stroke_width=max(1, h // 200), stroke_fill=(0, 0, 0))
    return out


def emoji_overlay(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Three emoji-like stickers (yellow faces), each about 1/6 of the shorter side."""
    out = im.copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    r = min(w, h) / 12
    for _ in range(3):
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 204, 0), outline=(120, 80, 0), width=max(1, round(r / 12)))
        for ex in (-0.35, 0.35):
            d.ellipse((cx + ex * r - r * 0.12, cy - r * 0.35, cx + ex * r + r * 0.12, cy - r * 0.05), fill=(60, 40, 0))
        d.arc((cx - r * 0.55, cy - r * 0.3, cx + r * 0.55, cy + r * 0.6), 20, 160, fill=(60, 40, 0), width=max(1, round(r / 8)))
    return out


def screenshot(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone screenshot of the photo: 9:19.5 portrait canvas, dark status bar with a clock and
    icons, the photo fitted to the width, a light app bar below, then rescaled to 720 wide."""
    cw, ch = 1080, 2340
    bg = (int(rng.integers(235, 256)),) * 3
    out = Image.new("RGB", (cw, ch), bg)
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, cw, 90), fill=(20, 20, 20))
    d.text((40, 25), "12:34", fill=(255, 255, 255), font=_font(40))
    for k in range(3):
        d.rectangle((cw - 60 - 50 * k, 30, cw - 30 - 50 * k, 60), fill=(255, 255, 255))
    w, h = im.size
    s = cw / w
    fitted = im.resize((cw, max(1, round(h * s))), Image.BILINEAR)
    top = 90 + 160
    out.paste(fitted, (0, top))
    bar_y = min(ch - 140, top + fitted.size[1] + 40)
    d.rectangle((0, bar_y, cw, bar_y + 100), fill=(225, 225, 225))
    d.text((40, bar_y + 30), "Liked by 12 others", fill=(40, 40, 40), font=_font(36))
    return out.resize((720, 1560), Image.BILINEAR)


def screenshot_dark(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another phone layout (a held-out edit): dark theme, 1080x2400, a taller status bar, a
    header with a name, the photo inset with side margins, a caption line and a navigation bar,
    rescaled to 540 wide and saved as JPEG q85."""
    cw, ch = 1080, 2400
    out = Image.new("RGB", (cw, ch), (18, 18, 18))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, cw, 120), fill=(0, 0, 0))
    d.text((60, 35), "9:41", fill=(230, 230, 230), font=_font(48))
    d.rectangle((0, 120, cw, 300), fill=(32, 32, 36))
    d.ellipse((50, 160, 150, 260), fill=(90, 120, 200))
    d.text((180, 185), "someone_42", fill=(240, 240, 240), font=_font(44))
    w, h = im.size
    margin = 48
    s = (cw - 2 * margin) / w
    fitted = im.resize((cw - 2 * margin, max(1, round(h * s))), Image.BILINEAR)
    top = 360
    out.paste(fitted, (margin, top))
    y = top + fitted.size[1] + 30
    d.text((margin, y), " ".join(rng.choice(WORDS, size=3)), fill=(220, 220, 220), font=_font(40))
    d.rectangle((0, ch - 160, cw, ch), fill=(28, 28, 28))
    for k in range(4):
        d.rectangle((120 + 240 * k, ch - 110, 180 + 240 * k, ch - 50), fill=(200, 200, 200))
    return jpeg(85)(out.resize((540, 1200), Image.BILINEAR), rng)


def screenshot_crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A desktop screenshot cropped loosely around the photo: a uniform grey margin of random
    width (4-12% per side) around it, saved as PNG-like (lossless) at 0.8x."""
    w, h = im.size
    m = [int(rng.uniform(0.04, 0.12) * s) for s in (w, h, w, h)]
    shade = int(rng.integers(30, 80))
    out = Image.new("RGB", (w + m[0] + m[2], h + m[1] + m[3]), (shade, shade, shade))
    out.paste(im, (m[0], m[1]))
    return resize(0.8)(out, rng)


#: The benchmark's edits, by name, in report order. ``family`` groups them in the table.
EDITS: dict[str, tuple[str, Edit]] = {
    "jpeg_q90": ("compression", jpeg(90)),
    "jpeg_q70": ("compression", jpeg(70)),
    "jpeg_q50": ("compression", jpeg(50)),
    "resize_0.5": ("compression", resize(0.5)),
    "resize_0.25": ("compression", resize(0.25)),
    "messaging_1280_q80": ("compression", messaging_app),
    "brightness_1.3": ("colour", enhance("brightness", 1.3)),
    "contrast_0.7": ("colour", enhance("contrast", 0.7)),
    "gamma_0.6": ("colour", gamma(0.6)),
    "greyscale": ("colour", greyscale),
    "blur_r2": ("filter", blur(2.0)),
    "noise_s10": ("filter", noise(10.0)),
    "rot90": ("dihedral", transpose(Image.Transpose.ROTATE_90)),
    "rot180": ("dihedral", transpose(Image.Transpose.ROTATE_180)),
    "rot270": ("dihedral", transpose(Image.Transpose.ROTATE_270)),
    "mirror": ("dihedral", transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    "rotate_+2": ("rotation", rotate(2)),
    "rotate_-2": ("rotation", rotate(-2)),
    "rotate_+5": ("rotation", rotate(5)),
    "rotate_-5": ("rotation", rotate(-5)),
    "crop_centre_5": ("crop", crop(0.05, centred=True)),
    "crop_centre_10": ("crop", crop(0.10, centred=True)),
    "crop_centre_20": ("crop", crop(0.20, centred=True)),
    "crop_offcentre_5": ("crop", crop(0.05, centred=False)),
    "crop_offcentre_10": ("crop", crop(0.10, centred=False)),
    "crop_offcentre_20": ("crop", crop(0.20, centred=False)),
    "letterbox_black_10": ("border", letterbox(0.10)),
    "letterbox_black_20": ("border", letterbox(0.20)),
    "pad_colour_10": ("border", pad_colour(0.10)),
    "pad_colour_20": ("border", pad_colour(0.20)),
    "screenshot_phone": ("border", screenshot),
    "screenshot_crop": ("border", screenshot_crop),
    "caption_banner_15": ("overlay", caption_banner(0.15)),
    "text_overlay": ("overlay", text_overlay),
    "emoji_overlay": ("overlay", emoji_overlay),
}


#: Held-out edits: variations of the geometric edits above (other crop amounts and anchors,
#: other angles, banner heights, positions and colours, another phone layout) that no
#: robustness option was tuned on; ``benchmarks/bench_robust.py`` reports them apart.
HELD_OUT_EDITS: dict[str, tuple[str, Edit]] = {
    "crop_centre_8": ("crop", crop(0.08, centred=True)),
    "crop_centre_14": ("crop", crop(0.14, centred=True)),
    "crop_at_1,1_10": ("crop", crop_at(0.10, 1.0, 1.0)),
    "crop_at_0.3,0.7_12": ("crop", crop_at(0.12, 0.3, 0.7)),
    "rotate_+3": ("rotation", rotate(3)),
    "rotate_-4": ("rotation", rotate(-4)),
    "rotate_+4_jpeg70": ("rotation", lambda im, rng: jpeg(70)(rotate(4)(im, rng), rng)),
    "caption_banner_10": ("overlay", caption_banner(0.10)),
    "caption_banner_20": ("overlay", caption_banner(0.20)),
    "caption_banner_top_black_15": ("overlay", caption_banner(0.15, top=True, colour=(0, 0, 0), ink=(255, 255, 255))),
    "screenshot_dark": ("border", screenshot_dark),
    # the other direction: the upload is larger than the banked picture
    "extend_centre_11": ("crop", extend_reflect(0.11)),
    "extend_at_0,0_11": ("crop", extend_reflect(0.11, 0.0, 0.0)),
    "extend_centre_20": ("crop", extend_reflect(0.20)),
}
