"""Image folders streamed from disk (masklab.stream): decoded on demand, cached in shared memory where it fits,
augmented per batch from (seed, batch number), and a folder with junk in it trains with one warning."""
import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.cli import main
from masklab.config import Config
from masklab.data import open_data
from masklab.stream import (ArrayImages, Epochs, FileImages, Images, Stream, augment, cache_fits, index_folder,
                            jpeg_header, looks_like_image)


def _folder(root, n=8, classes=("a", "b"), size=(24, 20), fmt="JPEG"):
    """n images per class in root/train and root/test: class a a bright left half, class b a bright right half."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
                half = slice(0, size[0] // 2) if k == 0 else slice(size[0] // 2, size[0])
                a[:, half] = 230
                Image.fromarray(a).save(root / split / c / f"{i}.{'jpg' if fmt == 'JPEG' else 'png'}", fmt)
    return root


class _Counting:
    """A source that counts its reads (in this process)."""

    def __init__(self, source):
        self.source, self.reads = source, 0

    def __len__(self):
        return len(self.source)

    @property
    def shape(self):
        return self.source.shape

    def read(self, i):
        self.reads += 1
        return self.source.read(i)


def test_junk_in_a_training_folder_is_skipped_with_one_warning_and_training_runs(tmp_path, capsys):
    """An HTML page saved as .jpg and an empty file: `masklab train` warns once with the count and trains;
    before, the first stopped it with PIL's UnidentifiedImageError."""
    root = _folder(tmp_path / "f")
    (root / "train" / "a" / "page.jpg").write_text("<!doctype html><html>not a photo</html>")
    (root / "train" / "b" / "empty.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["train", "--data", f"folder:{root}", "--image_size", "16", "--steps", "4", "--batch_size", "4",
                     "--log_every", "2", "--width", "4", "--classifier_width", "4", "--workers", "0",
                     "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    junk = [w for w in caught if "not images" in str(w.message)]
    assert len(junk) == 1 and "2 file(s)" in str(junk[0].message)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["data"]["skipped_files"] == 2
    assert summary["data"]["train_images"] == 16


def test_a_damaged_image_is_replaced_by_the_next_one_and_counted(tmp_path):
    """A file that starts like a JPEG but is cut short fails at decode time: the next image takes its place,
    it is marked bad once, and a warning says so (no crash, no retry on every epoch)."""
    root = _folder(tmp_path / "f", n=3)
    good = (root / "train" / "a" / "0.jpg").read_bytes()
    (root / "train" / "a" / "0.jpg").write_bytes(good[:40])
    paths, labels, skipped = index_folder(root / "train", ["a", "b"])
    assert not skipped and len(paths) == 6                         # the header looks fine
    images = Images(_Counting(FileImages(paths, (16, 16))), torch.tensor(labels))
    x, used = images.fetch([0, 1])
    assert used == [1, 1] and images.bad.tolist() == [True] + [False] * 5 and x.shape == (2, 3, 16, 16)
    stream = Stream(images, seed=0, workers=0, name="f")
    with pytest.warns(UserWarning, match="1 image.*could not be decoded"):
        for _ in range(3):
            stream.batch(4)


def test_index_folder_follows_imagefolder_order_and_reports_progress(tmp_path, monkeypatch):
    """Files are checked by threads, a chunk each (two files a chunk here, so four chunks): the order is still
    ImageFolder's, and progress only goes up."""
    import masklab.stream as stream
    monkeypatch.setattr(stream, "INDEX_CHUNK", 2)
    root = _folder(tmp_path / "f", n=3, fmt="PNG")
    (root / "train" / "a" / "sub").mkdir()
    Image.new("RGB", (5, 5)).save(root / "train" / "a" / "sub" / "z.png")
    (root / "train" / "a" / "notes.txt").write_text("ignored: not an image ending")
    seen = []
    paths, labels, skipped = index_folder(root / "train", ["a", "b"], lambda done, total: seen.append((done, total)))
    names = [p.split("train/")[1] for p in paths]
    assert names == ["a/0.png", "a/1.png", "a/2.png", "a/sub/z.png", "b/0.png", "b/1.png", "b/2.png"]
    assert labels == [0, 0, 0, 0, 1, 1, 1] and skipped == [] and seen[-1] == (7, 7)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_file_signatures():
    def encoded(fmt):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, fmt)
        return buf.getvalue()[:16]
    assert all(looks_like_image(encoded(f)) for f in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM"))
    assert not any(looks_like_image(h) for h in (b"", b"<html>", b"PK\x03\x04", b"%PDF-1.7"))


def test_jpeg_header_reads_size_and_exif_without_decoding():
    buf = io.BytesIO()
    img = Image.new("RGB", (64, 48))
    exif = img.getexif()
    exif[0x0112] = 6                                               # rotated: only PIL applies it
    img.save(buf, "JPEG", exif=exif.tobytes())
    assert jpeg_header(buf.getvalue()) == (64, 48, True)
    buf = io.BytesIO()
    Image.new("L", (33, 17)).save(buf, "JPEG", progressive=True)
    assert jpeg_header(buf.getvalue()) == (33, 17, False)
    assert jpeg_header(b"\x89PNG\r\n\x1a\n") is None and jpeg_header(b"\xff\xd8\xff\xe0\x00") is None


def test_a_batch_decodes_its_small_jpegs_in_one_call_with_the_pixels_of_one_by_one(tmp_path, monkeypatch):
    """A batch's small JPEGs go to the decoder together (one call), PNGs and a damaged JPEG one by one, each file
    read once: the same pixels as reading each image alone, and the damaged one replaced by the next image."""
    import masklab.stream as stream
    root = _folder(tmp_path / "f", n=3)
    _folder(tmp_path / "f", n=2, classes=("c",), fmt="PNG")
    paths, labels, _ = index_folder(root / "train", ["a", "b", "c"])
    files = FileImages(paths, (16, 16))
    alone = torch.stack([files.read(i)[0] for i in range(len(paths))])
    calls = []
    decode = stream._decode_jpeg()
    monkeypatch.setattr(stream, "_DECODER", [lambda data, **kw: calls.append(len(data) if isinstance(data, list)
                                                                          else "one") or decode(data, **kw)])
    reads = []
    read = stream._read_within_limit
    monkeypatch.setattr(stream, "_read_within_limit", lambda path: reads.append(path) or read(path))
    assert sorted(files.read_many(range(len(paths)))) == list(range(8))          # the JPEGs and the PNGs
    assert sorted(reads) == sorted(paths)                                        # each file read once
    x, used = Images(files, torch.tensor(labels)).fetch(list(range(len(paths))))
    assert calls == [6, 6] and used == list(range(len(paths))) and torch.equal(x, alone)  # the 6 JPEGs together
    damaged = root / "train" / "a" / "1.jpg"
    damaged.write_bytes(damaged.read_bytes()[:-200])           # its header intact, its scan cut short
    calls.clear()
    images = Images(files, torch.tensor(labels))
    x, used = images.fetch(list(range(len(paths))))           # the batch call fails: each JPEG alone instead
    assert calls[0] == 6 and set(calls[1:]) == {"one"}
    assert used == [0, 2, 2, 3, 4, 5, 6, 7] and images.bad.tolist() == [False, True] + [False] * 6
    assert torch.equal(x, alone[used])


def test_a_rotated_jpeg_comes_out_upright_and_the_fast_decoder_matches_pil(tmp_path):
    """Small JPEGs go through TorchCodec, others through PIL: the same pixels either way, EXIF honoured."""
    a = np.zeros((10, 30, 3), dtype=np.uint8)
    a[:, :10] = 255                                                # wide, bright on the left
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6                                               # display rotated 90 degrees clockwise
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(a).save(tmp_path / "p.jpg", quality=95)
    x, own = FileImages([str(tmp_path / "r.jpg")], (30, 10)).read(0)
    assert own == (10, 30)                                         # upright: 10 wide, 30 tall
    plain = FileImages([str(tmp_path / "p.jpg")], (10, 30))
    fast, _ = plain.read(0)
    via_pil = torch.from_numpy(np.asarray(Image.open(tmp_path / "p.jpg").convert("RGB")).transpose(2, 0, 1).copy())
    assert torch.equal(fast, via_pil)


def test_epochs_cover_every_image_once_and_batches_are_always_full():
    keys = iter(Epochs(10, 4, seed=3))
    first = [next(keys) for _ in range(5)]                         # 20 indices: two epochs exactly
    assert [k[0] for k in first] == [0, 1, 2, 3, 4] and all(len(k[1]) == 4 for k in first)
    flat = [i for _, idx in first for i in idx]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert [next(iter(Epochs(3, 8, seed=0)))[1].count(i) >= 2 for i in range(3)] == [True] * 3
    assert first == [k for k, _ in zip(Epochs(10, 4, seed=3), range(5))]


def test_the_cache_fills_once_and_is_shared_with_the_workers(tmp_path):
    """After one epoch through a worker process every image is in the parent's cache (shared memory), and a
    second epoch in this process reads no file."""
    root = _folder(tmp_path / "f", n=4)
    paths, labels, _ = index_folder(root / "train", ["a", "b"])
    counting = _Counting(FileImages(paths, (16, 16)))
    images = Images(counting, torch.tensor(labels), cache=True)
    stream = Stream(images, seed=0, workers=1)
    for _ in range(2):
        stream.batch(4)                                             # 8 images: one epoch, decoded in the worker
    stream.close()
    assert images.filled.all() and counting.reads == 0
    again = Stream(images, seed=1, workers=0)
    again.batch(8)
    assert counting.reads == 0
    assert torch.equal(images.cache[0], FileImages(paths, (16, 16)).read(0)[0])


def test_a_set_over_the_memory_budget_is_not_cached(tmp_path):
    root = _folder(tmp_path / "f", n=2)
    assert cache_fits((3, 32, 32), 1000, 3) and not cache_fits((3, 32, 32), 1100, 3)
    big = open_data(Config(data=f"folder:{root}", image_size=16, cache_mb=0))
    small = open_data(Config(data=f"folder:{root}", image_size=16))
    assert big.notes["cache"] is False and small.notes["cache"] is True


def test_batches_depend_on_the_seed_not_on_the_number_of_workers(tmp_path):
    root = _folder(tmp_path / "f", n=6)
    draw = lambda **kw: [open_data(Config(data=f"folder:{root}", image_size=16, **kw)).batch(4, None)
                         for _ in range(1)][0]
    x0, y0 = draw(workers=0, augment=True)
    x1, y1 = draw(workers=1, augment=True)
    x2, _ = draw(workers=0, seed=5, augment=True)
    assert torch.equal(x0, x1) and torch.equal(y0, y1) and not torch.equal(x0, x2)


def test_augmentation_crops_and_flips_photos_only_when_asked(tmp_path):
    """A bright-left image comes out bright-right about half the time; with augment off (the default), batches
    are the files; grayscale sets are never flipped."""
    x = torch.zeros(200, 3, 16, 16, dtype=torch.uint8)
    x[..., :8] = 255
    out = augment(x, torch.Generator().manual_seed(0))
    flipped = (out[..., :, 12:].float().mean((1, 2, 3)) > out[..., :, :4].float().mean((1, 2, 3)))
    assert out.dtype == torch.uint8 and out.shape == x.shape and 0.35 < flipped.float().mean() < 0.65
    assert not torch.equal(out[~flipped], x[~flipped])             # crops move the edge
    root = _folder(tmp_path / "f", n=4)
    plain = open_data(Config(data=f"folder:{root}", image_size=16, augment=False, workers=0))
    xb, yb = plain.batch(8, None)
    files = plain.sampler.images
    assert not files.augment
    expected = torch.stack([files.source.read(i)[0] for i in range(8)]).float() / 255
    order = [min(range(8), key=lambda j: (expected[j] - xb[k]).abs().sum()) for k in range(8)]
    assert torch.equal(xb, expected[order])
    assert not open_data(Config(data=f"folder:{root}", image_size=16)).sampler.images.augment   # off by default
    assert open_data(Config(data=f"folder:{root}", image_size=16, augment=True)).sampler.images.augment
    from masklab.data import _images
    gray = ArrayImages(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), (8, 8))
    colour = ArrayImages(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), (8, 8))
    asked = Config(augment=True)
    assert not _images(gray, torch.zeros(4).long(), asked).augment and _images(colour, torch.zeros(4).long(), asked).augment


def test_the_test_set_is_decoded_on_first_use_only(tmp_path):
    root = _folder(tmp_path / "f", n=5)
    data = open_data(Config(data=f"folder:{root}", image_size=16, test_size=6))
    assert data._test is None                                      # nothing decoded before training starts
    assert len(data.test) == 6 and data.test.x.dtype == torch.float32 and data.test is data.test
    again = open_data(Config(data=f"folder:{root}", image_size=16, test_size=6, seed=3))
    assert torch.equal(again.test.x, data.test.x)                  # fixed and seeded, not the run's seed


def test_the_app_trains_a_folder_with_loader_workers_from_its_thread(tmp_path):
    """The app's Run is fit() on a thread: loader workers are forked from it and the run ends done."""
    from masklab.live import RunManager
    root = _folder(tmp_path / "f", n=6)
    manager = RunManager(tmp_path / "checkpoints")
    try:
        run = manager.start(Config(data=f"folder:{root}", image_size=16, steps=6, batch_size=4, log_every=2,
                                   width=4, classifier_width=4, workers=1, device="cpu"))
        assert run.join(timeout=120)
    finally:
        manager.shutdown(timeout=60)
    view = run.view()
    assert view.status == "done" and view.records[-1].step == 6


def test_fit_reports_the_indexing_of_a_folder(tmp_path):
    """on_index(done, total) follows the file check of train/ and test/ before the first step."""
    from masklab.runs import fit
    root = _folder(tmp_path / "f", n=5)
    calls = []
    fit(Config(data=f"folder:{root}", image_size=16, steps=2, batch_size=4, log_every=1, width=4,
               classifier_width=4, workers=0, device="cpu"), out=tmp_path / "run", on_index=lambda *a: calls.append(a))
    assert calls[-1] == (10, 10) and (10, 10) in calls[:-1]          # train/ then test/, 10 files each


def test_bench_loader_measures_a_folder_side_by_side(tmp_path):
    """`bench --loader` on a small folder: loading.json has every number, and RESULTS.md's line reads it."""
    from masklab.bench import throughput_files
    from masklab.bench_loader import measure_loading
    root = _folder(tmp_path / "f", n=8)
    path = measure_loading(root, tmp_path, log=lambda s: None, sizes=(16,), images=16, steps=2, cold=False,
                           train_steps=3, rounds=1)
    t = json.loads(path.read_text())
    v = t["sizes"]["16px"]
    assert t["folder_images"] == 32 and v["first_step_s"] > 0 and v["peak_mb"] > 100 and v["generated_peak_mb"] > 100
    assert v["first_step_cold_s"] is None                                # cold=False: the warm run only
    assert set(v["images_per_s"]) == {"decoded", "cached", "in_memory", "ratio_decoded", "ratio_cached"}
    assert v["images_per_s"]["ratio_cached"] == pytest.approx(v["images_per_s"]["cached"] / v["images_per_s"]["in_memory"], abs=1e-3)
    assert any("image folder of 32 JPEGs" in line and "16px: first step" in line for line in throughput_files(tmp_path))
    from masklab.bench_loader import loading_line
    v["first_step_cold_s"] = 3.25                                     # a cold run says how cold it was
    assert "(3.25 s with the file cache emptied first)" in loading_line({**t, "cold_cache": "dropped"})
    assert "emptied" not in loading_line({**t, "cold_cache": "as found"})
