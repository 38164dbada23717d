"""Photos from disk without loading them all first: `folder:` and the torchvision sets as a torch Dataset.

  index_folder   the files of a folder, class by class (ImageFolder's order), each file's first bytes checked so
                 that non-images (an HTML page saved as .jpg, an empty file) are skipped and counted up front.
  FileImages     item i decoded on demand (the hostile-image checks of masklab.images; JPEGs decoded at a reduced
                 scale where the target size allows; a batch's small JPEGs by TorchCodec in one call), resized to
                 the run's size, as uint8 (C, H, W).
  ArrayImages    the same for images already in memory (torchvision's MNIST / CIFAR-10 arrays).
  Images         a source plus its labels, a uint8 cache in shared memory (kept only where it fits the memory
                 budget; workers fill it as they decode, so the first epoch decodes and later ones do not), and
                 the train-time augmentation of photos: a random resized crop (scale 0.5-1) and a horizontal flip.
  Stream         what train() draws batches from: seeded epochs of a shuffle, decoded by DataLoader workers
                 (pinned memory on CUDA). Augmentation draws from (seed, batch number), so a run is the same with
                 any number of workers.
Memory is the cache (if any) plus a few batches in flight: it does not grow with the folder.
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .images import MAX_BYTES, MAX_PIXELS, ImageError, open_image, to_mode

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
               b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")
CROP_SCALE = (0.5, 1.0)          # random resized crop: fraction of the image's area kept
CROP_RATIO = (3 / 4, 4 / 3)      # and its aspect ratio
# Indexing reads the first bytes of every file: on a cold file cache each read waits on the disk, so chunks of files
# are read by threads at once (the waits overlap; the GIL is released while they wait). Measured on CIFAR-10's 60,000
# files: README, "Command line" (the loader).
INDEX_THREADS, INDEX_CHUNK = 4, 256


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first 16 bytes start like one of the formats masklab.images reads."""
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def index_folder(root: Path, classes: list[str], progress: Callable[[int, int], None] | None = None
                 ) -> tuple[list[str], list[int], list[str]]:
    """(paths, labels, skipped) of the image files under root/<class>/ for each class, in ImageFolder's order
    (classes as given, then sorted paths, subfolders included). Files that do not start like an image are
    skipped. progress(done, total) is called as files are checked."""
    found = []
    for label, name in enumerate(classes):
        for folder, _, names in sorted(os.walk(root / name, followlinks=True)):
            found += [(os.path.join(folder, f), label) for f in sorted(names) if f.lower().endswith(EXTENSIONS)]
    paths, labels, skipped = [], [], []
    chunks = [found[i:i + INDEX_CHUNK] for i in range(0, len(found), INDEX_CHUNK)]
    done, every, reported = 0, max(1, len(found) // 100), 0
    with ThreadPoolExecutor(INDEX_THREADS) as pool:          # results in order, whatever finishes first
        for chunk, oks in zip(chunks, pool.map(_starts_like_images, chunks)):
            for (path, label), ok in zip(chunk, oks):
                if ok:
                    paths.append(path)
                    labels.append(label)
                else:
                    skipped.append(path)
            done += len(chunk)
            if progress and (done - reported >= every or done == len(found)):
                progress(done, len(found))
                reported = done
    return paths, labels, skipped


def _starts_like_images(files: list[tuple[str, int]]) -> list[bool]:
    """looks_like_image of each file's first 16 bytes (False where it cannot be read)."""
    oks = []
    for path, _ in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            oks.append(False)
            continue
        try:
            oks.append(looks_like_image(os.read(fd, 16)))
        except OSError:
            oks.append(False)
        finally:
            os.close(fd)
    return oks


class FileImages:
    """Image files decoded on demand to uint8 (C, H, W) at `size` (stretched to it, as the folder loader always
    did); picklable, so loader workers get a copy. `read` raises ImageError for a file it cannot use."""

    def __init__(self, paths: list[str], size: tuple[int, int], channels: int = 3):
        self.paths, self.size, self.channels = np.array(paths), tuple(size), channels   # one array: no per-string
        # reference counts for forked workers to copy

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def read(self, i: int) -> tuple[Tensor, tuple[int, int]]:
        """(image, its own upright (width, height)): the image at self.size (resized by resize_uint8). A JPEG not
        much larger than that size (most photo datasets' files) is decoded by TorchCodec's libjpeg-turbo, several
        times faster than through PIL; anything else, or a JPEG that fails there, goes through masklab.images
        (EXIF orientation applied; a large JPEG decoded at a reduced scale). The file is read once either way."""
        return self._decode(i, _read_within_limit(self.paths[i]))

    def read_many(self, indices: list[int]) -> dict[int, Tensor]:
        """{index: image} of the images at `indices`, each file read once: the small JPEGs read() would give
        TorchCodec decoded in one call of it (or one by one where that call fails), the rest as read() decodes
        them. An image that cannot be decoded is left out (read() says why). At 32 px the Python around each
        image's decoding costs as much as the decoding; a batch pays the decoder's own per-call checks once."""
        decode, picked, rest = _decode_jpeg(), [], []
        for i in indices:
            data = _read_within_limit(self.paths[i])
            small = decode is not None and data is not None and self._small_jpeg(jpeg_header(data))
            (picked if small else rest).append((i, data))
        out = {}
        if picked:
            try:
                xs = decode([torch.frombuffer(data, dtype=torch.uint8) for _, data in picked], mode=self._mode)
                out = {i: resize_uint8(x[None], self.size)[0] for (i, _), x in zip(picked, xs)}
            except (RuntimeError, ValueError):                # one damaged file: each of them alone
                rest += picked
        for i, data in rest:
            try:
                out[i] = self._decode(i, data)[0]
            except ImageError:
                pass
        return out

    def _decode(self, i: int, data: bytearray | None) -> tuple[Tensor, tuple[int, int]]:
        """read() of image i from its bytes (None where they could not be read: open_image then says why)."""
        fast = None if data is None else self._decode_small_jpeg(data)
        if fast is not None:
            return fast
        path = self.paths[i]
        img = open_image(path if data is None else data, name=str(path), draft=(max(self.size),) * 2)
        own = img.size
        a = np.asarray(to_mode(img, self.channels))
        x = torch.from_numpy(a.copy()).unsqueeze(0) if a.ndim == 2 else torch.from_numpy(a.transpose(2, 0, 1).copy())
        return resize_uint8(x[None], self.size)[0], own

    def _small_jpeg(self, header: tuple[int, int, bool] | None) -> bool:
        """Whether TorchCodec's JPEG decoder suits a JPEG with this header: no EXIF (whose orientation only PIL
        applies), no more than twice the target size, within the pixel limit."""
        return (header is not None and not header[2] and max(header[0], header[1]) <= 2 * max(self.size)
                and header[0] * header[1] <= MAX_PIXELS)

    def _decode_small_jpeg(self, data: bytearray) -> tuple[Tensor, tuple[int, int]] | None:
        """The image by TorchCodec's JPEG decoder where _small_jpeg says it suits it; None otherwise."""
        decode, header = _decode_jpeg(), jpeg_header(data)
        if decode is None or not self._small_jpeg(header):
            return None
        try:
            x = decode(torch.frombuffer(data, dtype=torch.uint8), mode=self._mode)
        except (RuntimeError, ValueError):
            return None
        return resize_uint8(x[None], self.size)[0], (header[0], header[1])

    @property
    def _mode(self) -> str:
        return "GRAY" if self.channels == 1 else "RGB"


def _read_within_limit(path: str) -> bytearray | None:
    """The file's bytes (a bytearray, which torch.frombuffer reads without a copy), or None where it cannot be read
    or is over MAX_BYTES (open_image then says which). os-level calls: a Python file object costs more than
    reading a small JPEG does."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > MAX_BYTES:
            return None
        data, got = bytearray(size), 0
        while got < size:                                # one read for a regular file; more if it is cut short
            n = os.readv(fd, [memoryview(data)[got:]])
            if not n:
                return data[:got]
            got += n
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


_DECODER: list = []


def _decode_jpeg():
    """torchcodec.decoders.decode_jpeg (libjpeg-turbo, about 5x faster than PIL for small photos with its
    Python overhead), or None where TorchCodec cannot be imported."""
    if not _DECODER:
        try:
            from torchcodec.decoders import decode_jpeg
        except Exception:                                 # absent, or its native library does not load here
            decode_jpeg = None
        _DECODER.append(decode_jpeg)
    return _DECODER[0]


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_header(data: bytes) -> tuple[int, int, bool] | None:
    """(width, height, has EXIF) from a JPEG's segments before its frame header, without decoding; None where
    data is not a JPEG whose header says its size."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i, exif = 2, False
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                               # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:      # markers without a length
            i += 2
            continue
        if marker in _SOF:
            h, w = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return (w, h, exif) if w and h else None
        exif = exif or (marker == 0xE1 and data[i + 4:i + 8] == b"Exif")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


class ArrayImages:
    """Images already in memory, uint8 (N, C, H, W), resized to `size` on read."""

    def __init__(self, images: Tensor, size: tuple[int, int]):
        self.images, self.size = images, tuple(size)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.images.shape[1], *self.size)

    @property
    def native(self) -> bool:
        return tuple(self.images.shape[-2:]) == self.size

    def read(self, i: int) -> tuple[Tensor, tuple[int, int]]:
        x = self.images[i]
        return resize_uint8(x[None], self.size)[0], (x.shape[-1], x.shape[-2])


def resize_uint8(x: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 (N, C, H, W) resized (bilinear, antialiased) to `size`; x itself where it has that size already."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def cache_fits(shape: tuple[int, ...], n: int, budget_mb: float) -> bool:
    """Whether n images of `shape` (uint8) fit in budget_mb megabytes."""
    return n * math.prod(shape) <= budget_mb * 2**20


class Images(torch.utils.data.Dataset):
    """A source of images with labels: item i is (uint8 (C, H, W), label), never augmented; `batch` gives
    augmented training batches. With `cache`, decoded images are kept in shared memory (filled by whichever
    process decodes them first). An image that fails to decode is marked bad and replaced by the next good one."""

    def __init__(self, source, labels: Tensor, cache: bool = False, augment: bool = False, seed: int = 0):
        self.source, self.labels, self.augment, self.seed = source, labels, augment, seed
        n = len(source)
        self.bad = torch.zeros(n, dtype=torch.bool).share_memory_()
        if isinstance(source, ArrayImages) and source.native:      # already in memory: nothing to decode
            self.cache, self.filled = source.images, torch.ones(n, dtype=torch.bool)
        elif cache:
            self.cache = torch.zeros((n, *source.shape), dtype=torch.uint8).share_memory_()
            self.filled = torch.zeros(n, dtype=torch.bool).share_memory_()
        else:
            self.cache, self.filled = None, None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, used = self.fetch([int(i)])
        return x[0], int(self.labels[used[0]])

    def fetch(self, indices: list[int]) -> tuple[Tensor, list[int]]:
        """uint8 (B, C, H, W) of these images (from the cache or decoded), and the indices actually used (a bad
        image's place is taken by the next good one)."""
        ready = self._decode_ahead(indices)
        xs, used = [], []
        for i in indices:
            x, i = self._one(i, ready)
            xs.append(x)
            used.append(i)
        return torch.stack(xs), used

    def _decode_ahead(self, indices: list[int]) -> dict[int, Tensor]:
        """The images among `indices` that the source decodes together (FileImages.read_many), skipping those
        known bad or already in the cache."""
        read_many = getattr(self.source, "read_many", None)
        if read_many is None:
            return {}
        bad, filled = self._flags()
        return read_many([i for i in indices if not bad[i] and (filled is None or not filled[i])])

    def _flags(self) -> tuple[np.ndarray, np.ndarray | None]:
        """numpy views of the shared bad / filled flags (the same memory; a numpy scalar read is ~20x cheaper
        than a tensor's), made once in each process."""
        if getattr(self, "_views", None) is None:
            self._views = (self.bad.numpy(), None if self.filled is None else self.filled.numpy())
        return self._views

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_views"}

    def _one(self, i: int, ready: dict[int, Tensor] | None = None) -> tuple[Tensor, int]:
        """Image i, or where it is bad the next good one, and its index; from `ready` (decoded ahead) where it is
        there."""
        bad, filled = self._flags()
        n = len(bad)
        for k in range(n):
            j = (i + k) % n
            if bad[j]:
                continue
            if filled is not None and filled[j]:
                return self.cache[j], j
            try:
                x = ready[j] if ready and j in ready else self.source.read(j)[0]
            except ImageError:
                bad[j] = True
                continue
            if self.cache is not None:
                self.cache[j] = x
                filled[j] = True
            return x, j
        raise ImageError("none of the images can be decoded")

    def batch(self, key: tuple[int, list[int]]) -> tuple[Tensor, Tensor]:
        """Training batch `key` = (batch number, indices): uint8 images, augmented where this set is, and labels."""
        number, indices = key
        x, used = self.fetch(indices)
        if self.augment:
            x = augment(x, torch.Generator().manual_seed(self.seed * 1_000_003 + number))
        return x, self.labels[used]


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """A random resized crop (area CROP_SCALE, aspect CROP_RATIO, bilinear back to the full size) and a horizontal
    flip with probability 1/2, drawn per image from g: uint8 (B, C, H, W) in and out."""
    from torchvision.ops import roi_align
    b, _, h, w = x.shape
    u = torch.rand(b, 5, generator=g)
    area = (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u[:, 0]) * h * w
    ratio = torch.exp(math.log(CROP_RATIO[0]) + math.log(CROP_RATIO[1] / CROP_RATIO[0]) * u[:, 1])
    cw, ch = (area * ratio).sqrt().clamp(max=w), (area / ratio).sqrt().clamp(max=h)
    x0, y0 = u[:, 2] * (w - cw), u[:, 3] * (h - ch)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], 1)
    out = roi_align(x.float(), boxes, output_size=(h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    out = torch.where((u[:, 4] < 0.5)[:, None, None, None], out.flip(-1), out)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class Epochs:
    """Batch keys (batch number, indices) forever: each epoch a fresh seeded shuffle of range(n); batches are
    always full (an epoch's tail carries into the next one), so a folder smaller than a batch still works."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.size, self.seed = n, batch, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        queue, number = torch.empty(0, dtype=torch.long), 0
        while True:
            while len(queue) < self.size:
                queue = torch.cat([queue, torch.randperm(self.n, generator=g)])
            yield number, queue[: self.size].tolist()
            queue, number = queue[self.size:], number + 1


class _Batches(torch.utils.data.Dataset):
    """The DataLoader's view of an Images set: item `key` is the whole batch `key` names."""

    def __init__(self, images: Images):
        self.images = images

    def __getitem__(self, key):
        return self.images.batch(key)


def loader_workers(requested: int = -1) -> int:
    """Decoding processes: as asked, or (-1) one per core beyond the first, at most 4."""
    from .device import usable_cpus
    return requested if requested >= 0 else max(0, min(4, usable_cpus() - 1))


class Stream:
    """Training batches for train(): `batch(n, generator)` gives float (n, C, H, W) in [0, 1] and labels on the
    run's device. The order comes from `seed`, not from the generator train() passes (that one draws the
    synthetic sets' batches); a new n starts a new stream. close() ends the workers."""

    def __init__(self, images: Images, seed: int, workers: int = -1, name: str = "images"):
        self.images, self.seed, self.workers, self.name = images, seed, loader_workers(workers), name
        self.device, self._it, self._n, self._bad_seen = torch.device("cpu"), None, None, 0

    def to(self, device):
        self.device = torch.device(device)

    def batch(self, n: int, generator=None) -> tuple[Tensor, Tensor]:
        if self._it is None or n != self._n:
            self.close()
            loader = torch.utils.data.DataLoader(
                _Batches(self.images), batch_size=None, sampler=Epochs(len(self.images), n, self.seed),
                num_workers=self.workers, pin_memory=self.device.type == "cuda",
                persistent_workers=False, prefetch_factor=4 if self.workers else None)
            self._it, self._n = iter(loader), n
        x, y = next(self._it)
        self._warn_bad()
        x = x.to(self.device, non_blocking=True).float().div_(255)
        return x, y.to(self.device, non_blocking=True)

    def _warn_bad(self) -> None:
        bad = int(self.images.bad.sum())
        if bad > self._bad_seen:
            warnings.warn(f"{self.name}: {bad} image(s) could not be decoded and are skipped (each replaced by the "
                          f"next image)", stacklevel=3)
            self._bad_seen = bad

    def close(self) -> None:
        self._it = None                       # the iterator's finaliser shuts its workers down

    def __del__(self):
        self.close()


def decode_all(images: Images, indices: list[int], workers: int = -1, batch: int = 256
               ) -> tuple[Tensor, list[int], list[tuple[int, int]]]:
    """uint8 (N, C, H, W) of the images at `indices` (not augmented), decoded by loader workers; the indices of
    those that decoded (the rest are dropped) and each one's own (width, height)."""
    part = _Part(images, indices)
    loader = torch.utils.data.DataLoader(part, batch_size=batch, num_workers=loader_workers(workers),
                                         collate_fn=_collate_part)
    xs, kept, sizes = [], [], []
    for x, k, s in loader:
        if k:                                          # a chunk whose every image failed adds nothing
            xs.append(x)
            kept += k
            sizes += s
    if not kept:
        raise ImageError("none of the test images can be decoded")
    return torch.cat(xs), kept, sizes


class _Part(torch.utils.data.Dataset):
    def __init__(self, images: Images, indices: list[int]):
        self.images, self.indices = images, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = self.indices[k]
        try:
            x, own = self.images.source.read(i)
        except ImageError:
            return None
        return x, i, own


def _collate_part(items):
    items = [t for t in items if t is not None]
    if not items:
        return torch.empty(0, dtype=torch.uint8), [], []
    return torch.stack([t[0] for t in items]), [t[1] for t in items], [t[2] for t in items]
