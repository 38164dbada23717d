"""Hostile inputs: every image a user might drop on the CLI `mask` command or the Inspect page either works
correctly or is refused with one clear line; checkpoints from anywhere execute nothing; a killed save leaves
the previous checkpoint loadable. The image corpus is generated here, so each case is exactly what it claims."""
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.checkpoint import CheckpointError, load_run
from masklab.cli import main
from masklab.images import MAX_BYTES, MAX_INPUT_PIXELS, ImageError, is_colour, open_image, run_mask, to_tensor
from masklab.runs import fit

ROOT = Path(__file__).resolve().parents[1]
SIZE = (32, 32)                                   # the tiny model's training size


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def photo(size=(90, 60), mode="RGB") -> Image.Image:
    """A real-looking picture: a bright square on a gradient (so resizing and rotation are visible)."""
    w, h = size
    a = np.add.outer(np.linspace(0, 120, h), np.linspace(0, 120, w))
    a[h // 4: h // 2, w // 4: w // 2] = 255
    return Image.fromarray(a.astype(np.uint8), "L").convert(mode)


def claims(w: int, h: int) -> bytes:
    """A ~70-byte PNG whose header claims w x h pixels (its IHDR patched, CRC fixed): a decompression bomb."""
    png = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    png[16:24] = struct.pack(">II", w, h)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def animated_gif() -> bytes:
    """Two frames: white, then black. The first frame is the one used."""
    frames = [Image.new("L", (20, 20), 255), Image.new("L", (20, 20), 0)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated() -> bytes:
    """A 60x30 JPEG whose EXIF says 'rotate 90 degrees clockwise to view' (orientation 6): upright it is 30x60."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo((60, 30)), "JPEG", exif=exif.tobytes())


def rgba() -> bytes:
    """Left half opaque white, right half fully transparent white: transparent pixels must come out black."""
    a = np.zeros((40, 40, 4), np.uint8)
    a[..., :3] = 255
    a[:, :20, 3] = 255
    return encode(Image.fromarray(a, "RGBA"), "PNG")


def palette_transparent() -> bytes:
    img = Image.new("P", (30, 30), 1)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.paste(0, (0, 0, 15, 30))
    return encode(img, "PNG", transparency=0)


def sixteen_bit() -> bytes:
    a = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)     # 0 .. 65520
    return encode(Image.fromarray(a), "PNG")


def png_of(img: Image.Image) -> bytes:
    return encode(img, "PNG")


# name (with the extension a user would have), the file's bytes, and either None (it must work) or a fragment of
# the one-line refusal.
CASES = [
    ("empty.png", lambda: b"", "the file is empty"),
    ("truncated.png", lambda: encode(Image.effect_noise((200, 200), 60), "PNG")[:3000], "damaged or truncated"),
    ("truncated.jpg", lambda: encode(Image.effect_noise((200, 200), 60).convert("RGB"), "JPEG")[:3000],
     "damaged or truncated"),
    ("page.png", lambda: b"<!doctype html><html><body>not an image</body></html>", "not an image"),
    ("notes.jpg", lambda: b"just some text, renamed", "not an image"),
    ("drawing.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    ("icon.ico", lambda: encode(Image.new("RGB", (16, 16)), "ICO"), "not an image"),
    ("bomb.png", lambda: claims(40000, 40000), "decompression bomb"),
    ("too-many-pixels.png", lambda: claims(7000, 7000), "over the 40 megapixel limit"),
    ("too-big.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES), "MB limit"),
    ("huge-photo.jpg", lambda: encode(photo((6000, 4000)), "JPEG", quality=60), None),
    ("one-pixel.png", lambda: png_of(Image.new("L", (1, 1), 200)), None),
    ("three.png", lambda: png_of(Image.new("RGB", (3, 3), (10, 200, 30))), None),
    ("strip.png", lambda: png_of(Image.new("L", (4000, 2), 200)), None),
    ("tall-strip.png", lambda: png_of(Image.new("L", (2, 3000), 200)), None),
    ("rgba.png", rgba, None),
    ("palette.png", palette_transparent, None),
    ("sixteen-bit.png", sixteen_bit, None),
    ("gray.png", lambda: png_of(photo(mode="L")), None),
    ("cmyk.jpg", lambda: encode(photo(mode="CMYK"), "JPEG"), None),
    ("animated.gif", animated_gif, None),
    ("rotated.jpg", exif_rotated, None),
    ("photo.webp", lambda: encode(photo(), "WEBP"), None),
    ("photo.tiff", lambda: encode(photo(), "TIFF"), None),
    ("photo.bmp", lambda: encode(photo(), "BMP"), None),
    ("float.tiff", lambda: encode(Image.fromarray(np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20), "F"),
                                  "TIFF"), None),
]
IDS = [c[0] for c in CASES]
REFUSED = {name: why for name, _, why in CASES if why}


@pytest.fixture(scope="module")
def corpus():
    return {name: make() for name, make, _ in CASES}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from masklab.config import Config
    tiny = Config(canvas=32, clutter=2, batch_size=8, steps=6, log_every=2, test_size=40, width=4,
                  classifier_width=4, device="cpu")
    path, _ = fit(tiny, out=tmp_path_factory.mktemp("hostile") / "run")
    return path


@pytest.mark.parametrize("name", IDS)
def test_every_image_works_or_is_refused_in_one_line(name, corpus, trained):
    """Library path: open_image + to_tensor + run_mask. Refusals are ImageError naming the file; the rest give
    a finite [0, 1] tensor that fits the training size and a mask of the same shape."""
    data, why = corpus[name], REFUSED.get(name)
    if why:
        with pytest.raises(ImageError, match=why) as e:
            open_image(data, name=name)
        assert str(e.value).startswith(name) and "\n" not in str(e.value)
        return
    _, model, _ = load_run(trained)
    x = to_tensor(open_image(data, name=name), model.channels, SIZE)
    assert x.dtype == torch.float32 and x.shape[:2] == (1, 1) and torch.isfinite(x).all()
    assert 0 <= x.min() and x.max() <= 1
    h, w = x.shape[-2:]
    assert max(h, w) == 32 and min(h, w) >= 1
    r = run_mask(model, x, 2 / 3)
    assert r.hard.shape == (1, h, w) and set(r.hard.unique().tolist()) <= {0.0, 1.0}
    assert torch.isclose(r.probs.sum(), torch.tensor(1.0))


def test_conversions_are_the_right_ones(corpus):
    """Orientation, first frame, alpha and wide grayscale are converted as the user would expect."""
    upright = open_image(corpus["rotated.jpg"])
    assert upright.size == (30, 60)                                 # EXIF orientation 6 honoured
    gif = to_tensor(open_image(corpus["animated.gif"]), 1, None)
    assert gif.mean() > 0.95                                        # the white first frame, not the black second
    alpha = to_tensor(open_image(corpus["rgba.png"]), 3, None)
    assert alpha[..., :20].min() > 0.99 and alpha[..., 20:].max() < 0.01   # transparent -> black
    pal = to_tensor(open_image(corpus["palette.png"]), 1, None)
    assert pal[..., :15].max() < 0.01 and pal[..., 15:].min() > 0.99
    wide = to_tensor(open_image(corpus["sixteen-bit.png"]), 1, None)
    assert wide.min() < 0.01 and wide.max() > 0.99 and len(wide.unique()) > 200   # 16 bits to 8, full range
    flt = to_tensor(open_image(corpus["float.tiff"]), 1, None)
    assert flt.min() < 0.01 and flt.max() > 0.99
    cmyk = to_tensor(open_image(corpus["cmyk.jpg"]), 3, None)
    assert cmyk.shape == (1, 3, 60, 90)


def test_keep_size_still_caps_what_the_model_is_given(corpus):
    """--keep-size on a 24-megapixel photo: the model gets at most MAX_INPUT_PIXELS, aspect ratio kept."""
    x = to_tensor(open_image(corpus["huge-photo.jpg"]), 1, None)
    h, w = x.shape[-2:]
    assert h * w <= MAX_INPUT_PIXELS * 1.01 and abs(w / h - 1.5) < 0.01


def test_cli_mask_goes_through_the_whole_corpus(corpus, trained, tmp_path, capsys):
    """One `mask` call on every file: one JSON line per usable image, one stderr line per refused one, no
    traceback, exit status 1 because some were refused."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for name, data in corpus.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    code = main(["mask", "--checkpoint", str(trained), *paths, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    errors = err.strip().splitlines()
    assert len(errors) == len(REFUSED)
    for name, why in REFUSED.items():
        assert any(name in line and why in line and line.startswith("masklab: error:") for line in errors), name
    done = [json.loads(line) for line in out.strip().splitlines()]
    assert sorted(Path(d["image"]).name for d in done) == sorted(n for n in corpus if n not in REFUSED)
    for d in done:
        assert all(Path(f).is_file() for f in d["files"].values())


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "1.5"], "--threshold must be in (0, 1)"),
    (["--threshold", "nan"], "--threshold must be in (0, 1)"),
    (["--topk", "0"], "--topk must be >= 1"),
])
def test_cli_mask_refuses_bad_options(argv, message, trained, tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(png_of(photo()))
    assert main(["mask", "--checkpoint", str(trained), str(img), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --- checkpoints ------------------------------------------------------------------------------------------------

def test_a_pickle_payload_runs_nothing_through_the_cli(trained, tmp_path, capsys):
    """`masklab eval` on a folder whose model.pt would create a file when unpickled: refused, file not created."""
    import shutil
    bad = tmp_path / "bad-run"
    shutil.copytree(trained, bad)
    proof = tmp_path / "pwned"
    payload = textwrap.dedent(f"""
        import pickle, sys
        class P:
            def __reduce__(self):
                return (open, ({str(proof)!r}, "w"))
        with open(sys.argv[1], "wb") as f:
            pickle.dump({{"classifier.head.weight": P()}}, f)
    """)
    subprocess.run([sys.executable, "-c", payload, str(bad / "model.pt")], check=True)
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "nothing in the file was executed" in err and err.count("\n") == 1
    assert not proof.exists()


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "config.json").write_text('{"alpha": NaN}'), "alpha"),
    (lambda d: (d / "config.json").write_text('{"gate": "none", "mask_loss": "none", "constraint": false, '
                                              '"canvas": 32, "width": 4, "classifier_width": 4}'),
     "weights do not fit"),                                     # another architecture: no attention branch
    (lambda d: (d / "model.pt").write_bytes((d / "model.pt").read_bytes()[:500]), "model.pt"),   # truncated
    (lambda d: (d / "model.pt").write_bytes(bytes(range(256)) * 40), "model.pt"),              # random bytes
    (lambda d: (d / "summary.json").write_text('{"data": {"channels": "many"}}'), "data.channels"),
    (lambda d: (d / "summary.json").unlink(), "summary.json: missing"),
])
def test_more_broken_run_folders(trained, tmp_path, breakage, message):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    breakage(run)
    with pytest.raises(CheckpointError, match=message) as e:
        load_run(run)
    assert str(run) in str(e.value)


def test_killing_the_process_during_a_save_keeps_the_previous_checkpoint(trained, tmp_path):
    """A child saves the run folder over and over; SIGKILL lands mid-save; the folder still loads, and holds
    either the old or a new complete model.pt (never half of one)."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = load_run(run)[1].state_dict()
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, torch
        from masklab.checkpoint import load_run, save_run
        cfg, model, summary = load_run({str(run)!r})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        print("saving", flush=True)
        while True:
            save_run({str(run)!r}, cfg, model, [], summary)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    started = child.stdout.readline().strip()
    assert started == "saving", f"the saving child did not start (said {started!r}, exit {child.poll()})"
    time.sleep(1.0)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    files = sorted(p.name for p in run.iterdir())                 # named in every message below: what the kill left
    _, model, _ = load_run(run)                                   # loadable: no half-written file in place
    after = model.state_dict()
    diffs = {round(float((after[k] - before[k]).abs().max()), 3) for k in before if before[k].is_floating_point()}
    assert diffs <= {0.0, 1.0}, f"weights neither wholly old nor wholly new: {sorted(diffs)}; files {files}"
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert all(p.startswith(".") for p in leftovers), f"a visible temp file: {files}"   # hidden at most, never loaded


def test_the_upload_limit_is_configured_and_matches_the_library():
    """.streamlit/config.toml caps uploads at the same size open_image accepts (the browser refuses larger)."""
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_BYTES


def test_is_colour_tells_photos_from_grayscale_saved_as_rgb():
    """What Inspect picks a demo by: sklearn's colour photos are colour; the same photo made gray, then saved as an
    RGB JPEG (whose chroma noise makes its channels differ slightly) is not; nor is a gray page with a tiny logo."""
    from sklearn.datasets import load_sample_image
    for name in ("china.jpg", "flower.jpg"):
        photo = Image.fromarray(load_sample_image(name))
        assert is_colour(photo), name
        buffer = io.BytesIO()
        photo.convert("L").convert("RGB").save(buffer, format="JPEG", quality=60)
        assert not is_colour(Image.open(buffer)), name
        assert not is_colour(photo.convert("L"))
    page = np.full((200, 200, 3), 240, np.uint8)
    page[:20, :20] = (255, 0, 0)                                       # 1% of the pixels: a red corner
    assert not is_colour(Image.fromarray(page))
    page[:60, :60] = (255, 0, 0)                                       # 9%
    assert is_colour(Image.fromarray(page))
