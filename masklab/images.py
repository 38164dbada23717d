"""User images in, mask pictures out: shared by the CLI `mask` command and the app's Inspect page.

Reading is defensive: the pixel count is checked from the header before anything is decoded, EXIF
orientation is honoured, animated images give their first frame, and every mode (RGBA, palette, 16-bit,
CMYK, grayscale) is converted to what the model was trained on. Any failure is one ImageError line.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000      # refuse larger images before decoding (decompression bombs)
MAX_BYTES = 50 * 1024 * 1024
MAX_INPUT_PIXELS = 1_000_000  # what the model is given at most, even at the image's own size (memory ~ pixels)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "ppm"]   # file endings an uploader offers
ACCEPTED = "PNG, JPEG, GIF (first frame), BMP, TIFF, WebP or PPM, at most 40 megapixels and 50 MB"


class ImageError(ValueError):
    """An image that cannot be used; the message says why in one line."""


def open_image(source, name: str = "image", draft: tuple[int, int] | None = None) -> Image.Image:
    """A decoded, upright PIL image from a path, bytes (or a bytearray) or file object; ImageError on anything
    unusable. `draft` (w, h): a JPEG may be decoded at a reduced scale (1/2 to 1/8) that still covers this size."""
    try:
        data = source if isinstance(source, (bytes, bytearray)) else (
            Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read())
    except OSError as e:
        raise ImageError(f"{name}: cannot read the file ({e.strerror or e})") from None
    if not data:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB limit")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            w, h = img.size                                    # from the header: nothing decoded yet
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the "
                                 f"{MAX_PIXELS / 1e6:.0f} megapixel limit")
            img.seek(0)                                        # animated: the first frame
            if draft and img.format == "JPEG":
                img.draft(None, draft)
            img.load()
            return ImageOps.exif_transpose(img.copy()) or img.copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image in a supported format ({ACCEPTED})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: refused as a decompression bomb (claims too many pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: damaged or truncated image ({str(e)[:120] or type(e).__name__})") from None


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """The image as 8-bit grayscale (channels 1) or RGB: alpha composited on black (as masked pixels are), and so
    are pixels a palette, gray or RGB PNG names transparent (tRNS); 16-bit and float grayscale brought to 0..255,
    palette and CMYK converted."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    if img.mode.startswith(("I", "F")):                        # 16-bit, 32-bit or float grayscale
        img = Image.fromarray(_to_8bit(img.mode, np.asarray(img, dtype=np.float64)), "L")
    return img.convert("L" if channels == 1 else "RGB")


def is_colour(img: Image.Image, tolerance: int = 16, fraction: float = 0.02) -> bool:
    """Whether an image is a colour picture: over `fraction` of its pixels (on a 64-pixel thumbnail) have channels
    more than `tolerance` of 255 apart. A grayscale scan saved as RGB, or a JPEG's faint chroma noise, is not."""
    small = to_mode(img, 3)
    small.thumbnail((64, 64))
    a = np.asarray(small, dtype=np.int16)
    return bool(((a.max(axis=2) - a.min(axis=2)) > tolerance).mean() > fraction)


def to_tensor(img: Image.Image, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """(1, C, H, W) float in [0, 1]: converted by to_mode, resized to fit `size` keeping the aspect ratio (None:
    keep the image's own size, scaled down to MAX_INPUT_PIXELS if larger)."""
    x = torch.from_numpy(np.array(to_mode(img, channels), dtype=np.float32) / 255.0)
    x = x[None, None] if channels == 1 else x.permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    scale = min(size[0] / h, size[1] / w) if size is not None else min(1.0, (MAX_INPUT_PIXELS / (h * w)) ** 0.5)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new != (h, w):
        x = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=scale < 1).clamp(0, 1)
    return x


def _to_8bit(mode: str, a: np.ndarray) -> np.ndarray:
    """Wide grayscale to 0..255 by the range its type implies: 16-bit /257, float in [0, 1] x255, 8-bit-valued
    ints as they are; anything else (e.g. raw sensor counts) stretched from its min to its max."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a = a / 257
    elif mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    elif lo < 0 or hi > 255:
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
    return (a + 0.5).clip(0, 255).astype(np.uint8)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8 for PIL."""
    a = x.detach().float().clamp(0, 1).cpu().numpy()
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return (a * 255 + 0.5).astype(np.uint8)


def overlay(x: torch.Tensor, mask: torch.Tensor, colour=(255, 40, 40), dim: float = 0.35) -> Image.Image:
    """The image in RGB with removed pixels dimmed and kept pixels tinted: x (C, H, W), mask (1, H, W) in [0, 1]."""
    img = to_uint8(x).astype(np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    m = mask.detach().float().cpu().numpy()[0][..., None]
    tint = np.array(colour, dtype=np.float32)
    out = img * (dim + (1 - dim) * m)
    out = out * (1 - 0.45 * m) + tint * 0.45 * m
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")


def enlarge(img: Image.Image, side: int = 160) -> Image.Image:
    """Upscale small images with nearest neighbours so pixels stay pixels (the browser would blur them)."""
    scale = max(1, side // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class MaskResult:
    x: torch.Tensor          # (C, H, W) the image as the model saw it
    relaxed: torch.Tensor    # (1, H, W) m_eval
    hard: torch.Tensor       # (1, H, W) 0/1
    probs: torch.Tensor      # (K,) class probabilities on x * hard
    area: float

    def histogram(self, bins: int) -> np.ndarray:
        """Fraction of the image's m_eval values in each of `bins` equal bins over [0, 1]."""
        return (torch.histc(self.relaxed.float(), bins=bins, min=0, max=1) / self.relaxed.numel()).numpy()

    def top(self, class_names: list[str], k: int = 3) -> list[dict]:
        p, i = self.probs.topk(min(k, len(self.probs)))
        return [{"class": class_names[j], "probability": round(float(q), 4)} for q, j in zip(p, i.tolist())]


@torch.no_grad()
def run_mask(model, x: torch.Tensor, temperature: float, threshold: float = 0.5) -> MaskResult:
    """Mask one image x (1, C, H, W) and classify x * hard mask."""
    model.eval()
    x = x.to(next(model.parameters()).device)
    m = model.gate_relaxed(x, temperature)
    hard = (m > threshold).to(x.dtype)
    probs = model(x, temperature, mask=hard).logits.float().softmax(1)[0]
    return MaskResult(x[0].cpu(), m[0].cpu(), hard[0].cpu(), probs.cpu(), hard.mean().item())
