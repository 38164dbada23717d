"""Datasets behind the `data` spec strings. Everything is offline by default.

  cluttered-digits    scikit-learn's bundled UCI handwritten digits (1797 8x8 images) upscaled 2x onto a larger
                      canvas with fragments of other digits as clutter ("cluttered MNIST", Mnih et al. 2014, at
                      laptop scale). Training batches are drawn on the fly, vectorised; the test set is fixed.
  shapes              synthetic RGB: a coloured disk / square / triangle / cross on a smooth texture with
                      distractor blobs; the label is the shape.
  mnist:ROOT, fashion-mnist:ROOT, cifar10:ROOT   torchvision's real loaders from a local root (no download
                      unless `download` is on).
  folder:PATH         the user's images: PATH/train/<class>/*, PATH/test/<class>/* (or a seeded split of
                      PATH/<class>/*), with an optional PATH/boxes.csv (path,x0,y0,x1,y1) for localisation.

The synthetic sets draw batches on the run's device with the run's own generator; photos (folders, torchvision
sets) stream through masklab.stream's DataLoader, seeded by the run's seed. Test sets are fixed (their own seed)
and carry the true object box and ink where they are known; a photo test set is decoded when first used.
"""
from __future__ import annotations

import csv
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

SPLIT_SEED = 20240101   # the train/test split and the test set do not depend on a run's seed
TEST_SEED = 7


class DataError(ValueError):
    """A dataset that cannot be opened; the message says what to do."""


@dataclass
class TestSet:
    x: Tensor                     # (N, C, H, W) float in [0, 1]
    y: Tensor                     # (N,) int64
    boxes: Tensor | None = None   # (N, 4) x0, y0, x1, y1 in pixels (end exclusive); NaN rows where unknown
    ink: Tensor | None = None     # (N, 1, H, W) bool: the object's own pixels

    def __len__(self):
        return len(self.y)

    def to(self, device) -> "TestSet":
        move = lambda t: None if t is None else t.to(device)
        return TestSet(self.x.to(device), self.y.to(device), move(self.boxes), move(self.ink))

    def subset(self, n: int) -> "TestSet":
        pick = lambda t: None if t is None else t[:n]
        return TestSet(self.x[:n], self.y[:n], pick(self.boxes), pick(self.ink))


@dataclass
class Dataset:
    name: str
    class_names: list[str]
    channels: int
    size: tuple[int, int]                 # (H, W) of every image
    test_source: TestSet | Callable[[], TestSet] = field(repr=False)   # the test set, or how to make it when
    # first used (photos are decoded then, not before the first training step)
    sampler: object = field(repr=False)   # (n, generator) -> (x, y) on the sampler's device
    notes: dict = field(default_factory=dict)   # facts for summary.json (images found, files skipped, cache)

    def __post_init__(self):
        self._device, self._lock = torch.device("cpu"), threading.Lock()
        self._test = self.test_source if isinstance(self.test_source, TestSet) else None

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def test(self) -> TestSet:
        """The fixed, seeded test set on the dataset's device (decoded on first use; thread-safe)."""
        with self._lock:
            if self._test is None:
                self._test = self.test_source().to(self._device)
            return self._test

    def batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.sampler.batch(n, generator)

    def truth_batch(self, n: int, generator: torch.Generator, kind: str) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, true mask (n, 1, H, W) float 0/1): the object's ink or box, for the oracle references."""
        if not hasattr(self.sampler, "draw"):
            raise DataError(f"{self.name} does not know where its objects are: an oracle needs cluttered-digits "
                            f"or shapes")
        x, y, boxes, ink = self.sampler.draw(n, generator)
        return x, y, true_mask(kind, x, boxes, ink)

    def to(self, device) -> "Dataset":
        self.sampler.to(device)
        with self._lock:
            self._device = torch.device(device)
            if self._test is not None:
                self._test = self._test.to(device)
        return self

    def close(self) -> None:
        """End any loader workers (a run's end; the dataset may be used again, they restart)."""
        getattr(self.sampler, "close", lambda: None)()

    def describe(self) -> dict:
        return {"data": self.name, "channels": self.channels, "classes": self.classes,
                "class_names": self.class_names, "input_size": list(self.size), **self.notes}


def true_mask(kind: str, x: Tensor, boxes: Tensor | None, ink: Tensor | None) -> Tensor:
    """(N, 1, H, W) float 0/1: the object's own pixels (kind "ink") or its bounding box ("box")."""
    from .metrics import box_masks
    if kind == "ink" and ink is not None:
        return ink.to(x.dtype)
    if kind == "box" and boxes is not None and not torch.isnan(boxes).any():
        return box_masks(boxes, x.shape).to(x.dtype)
    raise DataError(f"the true {kind} of these images is not known: an oracle needs cluttered-digits or shapes")


def stratified_split(labels: Tensor, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint train / test indices with the same class proportions, from a seeded permutation per class."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero()[:, 0]
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, int(round(test_fraction * len(idx)))) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


# --- photos: torchvision sets and image folders, streamed (masklab.stream) ----------------------------------

def _photo_sampler(images: "Images", cfg, name: str, notes: dict):
    """The training Stream of `images` (its seed and workers from cfg); what it is goes into `notes`."""
    from .stream import Stream
    notes.update(train_images=len(images), cache=images.cache is not None, augment=images.augment)
    return Stream(images, cfg.seed, cfg.workers, name)


def _images(source, labels: Tensor, cfg):
    """An Images set of `source`: cached where the decoded set fits cfg.cache_mb, augmented if colour and cfg says."""
    from .stream import ArrayImages, Images, cache_fits
    photos = source.shape[0] == 3                     # flips and crops suit photos, not digits
    cache = cfg.cache_mb > 0 and cache_fits(source.shape, len(source), cfg.cache_mb)
    native = isinstance(source, ArrayImages) and source.native
    return Images(source, labels, cache=cache and not native, augment=cfg.augment and photos, seed=cfg.seed)


def _test_set(images, test_size: int, workers: int, boxes: Tensor | None = None) -> TestSet:
    """The fixed test set: a seeded choice of test_size images (0: all), decoded (a file that fails is left out)
    and its boxes scaled from each image's own size to the set's."""
    from .stream import decode_all
    g = torch.Generator().manual_seed(TEST_SEED)
    order = torch.randperm(len(images), generator=g)[: test_size or len(images)].tolist()
    x, kept, own = decode_all(images, order, workers)
    if len(kept) < len(order):
        warnings.warn(f"{len(order) - len(kept)} test image(s) could not be decoded and are left out", stacklevel=2)
    if boxes is not None:
        h, w = x.shape[-2:]
        scale = torch.tensor([[w / a, h / b, w / a, h / b] for a, b in own])
        boxes = boxes[kept] * scale
    x = to_unit_float(x)
    return TestSet(x, images.labels[kept], boxes, None)


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1], written into one new tensor chunk by chunk (no second float copy at its peak)."""
    out = torch.empty(x.shape, dtype=torch.float32)
    for i in range(0, len(x), 512):
        out[i:i + 512].copy_(x[i:i + 512]).div_(255)
    return out


TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_set(kind: str, root: str, cfg) -> Dataset:
    """torchvision's MNIST / Fashion-MNIST / CIFAR-10 from a local root (its arrays are in memory already),
    served through the same Images / Stream path as a folder."""
    import torchvision

    from .stream import ArrayImages
    cls = getattr(torchvision.datasets, TORCHVISION[kind])
    try:
        train = cls(root, train=True, download=cfg.download)
        test = cls(root, train=False, download=cfg.download)
    except RuntimeError as e:
        raise DataError(f"{kind}: no usable files under {root!r} ({e}). Put the dataset there, or pass "
                        f"--download true to let torchvision fetch it (needs internet).") from None

    def tensors(ds):
        data = torch.as_tensor(ds.data)
        data = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)   # (N, C, H, W) uint8
        return data.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)

    (xtr, ytr), (xte, yte) = tensors(train), tensors(test)
    size = (cfg.image_size,) * 2 if cfg.image_size else tuple(xtr.shape[-2:])
    name, notes = f"{kind}:{root}", {}
    train_images = _images(ArrayImages(xtr, size), ytr, cfg)
    test_images = _images(ArrayImages(xte, size), yte, cfg.replace(augment=False, cache_mb=0))
    return Dataset(name, list(train.classes), xtr.shape[1], size,
                   lambda: _test_set(test_images, cfg.test_size, 0),
                   _photo_sampler(train_images, cfg, name, notes), notes)


FOLDER_SIZE = 64


def image_folder(root: str, cfg, progress: Callable[[int, int], None] | None = None) -> Dataset:
    """folder:PATH, indexed (files that are not images skipped, with one warning that counts them) but not
    decoded: training images stream from disk (masklab.stream), the test set is decoded when first used."""
    from .stream import FileImages, index_folder
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"folder:{root}: not a directory")
    size = (cfg.image_size or FOLDER_SIZE,) * 2
    split = (path / "train").is_dir()
    parts = {"train": path / "train"} if split else {"train": path}
    if split and (path / "test").is_dir():
        parts["test"] = path / "test"
    classes = {k: sorted(e.name for e in os.scandir(p) if e.is_dir()) for k, p in parts.items()}
    if not classes["train"]:
        raise DataError(f"folder:{root}: no class folders. Expected {FOLDER_LAYOUT}")
    if "test" in classes and classes["test"] != classes["train"]:
        raise DataError(f"folder:{root}: train classes {classes['train']} differ from test classes "
                        f"{classes['test']}")
    boxes, index, skipped = _read_boxes(path), {}, []
    for k, p in parts.items():
        paths, labels, bad = index_folder(p, classes["train"], progress)
        index[k], skipped = (paths, torch.tensor(labels, dtype=torch.int64)), skipped + bad
    if skipped:
        warnings.warn(f"folder:{root}: {len(skipped)} file(s) with an image ending are not images and are skipped "
                      f"(first: {skipped[0]})", stacklevel=2)
    empty = [c for i, c in enumerate(classes["train"]) if not (index["train"][1] == i).any()]
    if empty:
        raise DataError(f"folder:{root}: no images in {', '.join(empty[:5])}. Expected {FOLDER_LAYOUT}")
    paths, labels = index["train"]
    if "test" in index:
        (test_paths, test_labels) = index["test"]
    else:                                             # a seeded, stratified split of the one folder
        tr, te = stratified_split(labels, 0.2, SPLIT_SEED)
        test_paths, test_labels = [paths[i] for i in te.tolist()], labels[te]
        paths, labels = [paths[i] for i in tr.tolist()], labels[tr]
    box_rows = [boxes.get(Path(f).relative_to(path).as_posix()) for f in test_paths]
    test_boxes = (torch.tensor([b if b else [float("nan")] * 4 for b in box_rows]) if any(box_rows) else None)
    name = f"folder:{root}"
    notes = {"skipped_files": len(skipped)}
    train_images = _images(FileImages(paths, size), labels, cfg)
    test_images = _images(FileImages(test_paths, size), test_labels, cfg.replace(augment=False, cache_mb=0))
    return Dataset(name, classes["train"], 3, size,
                   lambda: _test_set(test_images, cfg.test_size, cfg.workers, test_boxes),
                   _photo_sampler(train_images, cfg, name, notes), notes)


def _read_boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    file = path / "boxes.csv"
    if not file.exists():
        return {}
    boxes = {}
    with open(file, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                key = Path(row["path"]).as_posix()
                boxes[key] = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{file}: line {n} is not path,x0,y0,x1,y1 with numbers") from None
    return boxes


def open_data(cfg, device="cpu", progress: Callable[[int, int], None] | None = None) -> Dataset:
    """The Dataset of cfg.data, its tensors on `device`. progress(done, total) follows the indexing of a folder's
    files (the one step before the first batch that grows with the folder)."""
    from .synthetic import cluttered_digits, shapes     # which import this module's Dataset
    spec = cfg.data
    kind, _, arg = spec.partition(":")
    if spec == "cluttered-digits":
        data = cluttered_digits(cfg)
    elif spec == "shapes":
        data = shapes(cfg)
    elif kind in TORCHVISION and arg:
        data = torchvision_set(kind, arg, cfg)
    elif kind == "folder" and arg:
        data = image_folder(arg, cfg, progress)
    else:
        raise DataError(f"unknown data spec {spec!r}: use cluttered-digits, shapes, mnist:ROOT, "
                        f"fashion-mnist:ROOT, cifar10:ROOT or folder:PATH")
    return data.to(device)


def test_samples(cfg, n: int = 64) -> tuple[Tensor, Tensor]:
    """(x, y) on the CPU: the first n test images of cfg's dataset (DataError or OSError where it is unavailable).
    Photos: only those n are decoded (the test set's seeded order does not depend on its size)."""
    if cfg.data not in ("cluttered-digits", "shapes") and not 0 < cfg.test_size <= n:
        cfg = cfg.replace(test_size=n)
    test = open_data(cfg).test
    return test.x[:n].cpu(), test.y[:n].cpu()


FOLDER_LAYOUT = ("PATH/<class>/<image> (a seeded 80/20 split is made), or PATH/train/<class>/<image> with "
                 "PATH/test/<class>/<image>; optional PATH/boxes.csv (path,x0,y0,x1,y1 in pixels, path relative to PATH) for the localisation "
                 "metrics")


def check_dataset(spec: str, download: bool = False) -> str:
    """One line on what a dataset spec names, checked without decoding a single image (the app says it before a
    run starts); DataError with what is wrong and the layout expected otherwise."""
    from .stream import EXTENSIONS
    kind, _, arg = spec.partition(":")
    if spec in ("cluttered-digits", "shapes"):
        return f"{spec}: built in, generated offline"
    if kind in TORCHVISION and arg:
        if Path(arg).is_dir() or download:
            return f"{kind}: torchvision's files under {arg}" + (" (downloaded there if missing)" if download else "")
        raise DataError(f"{kind}: {arg!r} is not a folder; put the dataset there or turn on download")
    if kind != "folder" or not arg:
        raise DataError(f"unknown data spec {spec!r}: use cluttered-digits, shapes, mnist:ROOT, fashion-mnist:ROOT, "
                        f"cifar10:ROOT or folder:PATH")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder. Expected {FOLDER_LAYOUT}")
    count = lambda d: sum(1 for p in d.rglob("*") if p.suffix.lower() in EXTENSIONS)
    parts = {s: root / s for s in ("train", "test") if (root / s).is_dir()} or {"all": root}
    classes = {s: sorted(c.name for c in p.iterdir() if c.is_dir()) for s, p in parts.items()}
    if not all(classes.values()):
        raise DataError(f"{root}: no class folders. Expected {FOLDER_LAYOUT}")
    if "test" in classes and classes["test"] != classes.get("train"):
        raise DataError(f"{root}: train/ and test/ have different class folders")
    images = {s: sum(count(p / c) for c in classes[s]) for s, p in parts.items()}
    if not all(images.values()):
        raise DataError(f"{root}: no images ({', '.join(EXTENSIONS)}) in its class folders")
    n = next(iter(classes.values()))
    split = (f"{images['train']} training and {images['test']} test images" if "test" in images
             else f"{sum(images.values())} images, split 80/20 into train and test")
    return f"{len(n)} classes ({', '.join(n[:5])}{'…' if len(n) > 5 else ''}), {split}"
