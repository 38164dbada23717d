import struct

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.config import Config
from masklab.data import DataError, open_data, stratified_split, SPLIT_SEED
from masklab.synthetic import source_digits


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_cluttered_digits_geometry_matches_the_benchmark_preset():
    """48x48 canvas, 16x16 digit box (11% of the canvas), ink about 5%, ink inside its box."""
    data = open_data(Config(test_size=300))
    t = data.test
    assert t.x.shape == (300, 1, 48, 48) and data.classes == 10 and data.channels == 1
    area = ((t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1]) / 48 ** 2)
    assert torch.allclose(area, torch.full_like(area, 256 / 2304))
    assert 0.03 < t.ink.float().mean() < 0.07
    from masklab.metrics import box_masks
    assert not (t.ink & ~box_masks(t.boxes, t.x.shape)).any()
    assert t.x.min() >= 0 and t.x.max() <= 1


def test_the_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    """The UCI digits come from the file scikit-learn ships, exactly as its load_digits gives them; where that file
    is not found (another layout), through load_digits itself."""
    from sklearn.datasets import load_digits
    from masklab import synthetic
    d = load_digits()
    images, labels = synthetic._uci_digits()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
    synthetic._uci_digits.cache_clear()
    monkeypatch.setattr(synthetic.importlib.util, "find_spec", lambda name: None)      # no such file to read
    try:
        images, labels = synthetic._uci_digits()
        assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
    finally:
        synthetic._uci_digits.cache_clear()


def test_train_and_test_source_digits_are_disjoint_and_stratified():
    """The 1797 UCI digits split into disjoint sets with every class in both, the same every time."""
    _, labels = source_digits()
    train, test = stratified_split(labels, 0.2, SPLIT_SEED)
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    assert len(train) + len(test) == 1797
    assert set(labels[test].tolist()) == set(range(10)) == set(labels[train].tolist())
    again = stratified_split(labels, 0.2, SPLIT_SEED)
    assert torch.equal(again[1], test)


def test_test_set_is_fixed_and_training_batches_follow_the_generator():
    """The test set ignores the run seed; training batches repeat with the same generator seed only."""
    a, b = open_data(Config(seed=1, test_size=50)), open_data(Config(seed=2, test_size=50))
    assert torch.equal(a.test.x, b.test.x)
    x1, y1 = a.batch(16, _gen(3))
    x2, y2 = a.batch(16, _gen(3))
    x3, _ = a.batch(16, _gen(4))
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)


def test_other_canvas_sizes_and_no_clutter_work():
    """Geometry is an option: a 32x32 canvas without clutter has only the digit's ink."""
    data = open_data(Config(canvas=32, clutter=0, test_size=20))
    assert data.test.x.shape[-2:] == (32, 32)
    assert ((data.test.x[:, :1] > 0.25) == data.test.ink).float().mean() > 0.99


def test_shapes_dataset_is_rgb_with_its_object_inside_the_box():
    """The synthetic colour set: 3 channels, 4 classes, object pixels inside the object's box."""
    from masklab.metrics import box_masks
    data = open_data(Config(data="shapes", test_size=64))
    t = data.test
    assert t.x.shape == (64, 3, 48, 48) and data.classes == 4
    assert not (t.ink & ~box_masks(t.boxes, t.x.shape)).any()
    assert set(t.y.tolist()) == {0, 1, 2, 3}


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.mark.parametrize("kind, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_loader_reads_idx_files(tmp_path, kind, folder):
    """The real torchvision loader reads tiny idx files from a local root, with no download."""
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 12)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    data = open_data(Config(data=f"{kind}:{tmp_path}", test_size=0))
    assert data.channels == 1 and data.classes == 10 and data.size == (28, 28)
    assert data.test.x.shape == (12, 1, 28, 28) and data.test.boxes is None
    x, y = data.batch(5, _gen())
    assert x.shape == (5, 1, 28, 28) and 0 <= x.min() and x.max() <= 1 and y.max() < 10
    resized = open_data(Config(data=f"{kind}:{tmp_path}", image_size=20, test_size=4))
    assert resized.batch(2, _gen())[0].shape == (2, 1, 20, 20) and resized.test.x.shape == (4, 1, 20, 20)


def test_missing_torchvision_data_says_how_to_get_it(tmp_path):
    """Without files and without --download the error says what to do, and nothing is fetched."""
    with pytest.raises(DataError, match="--download"):
        open_data(Config(data=f"mnist:{tmp_path}"))
    assert not any(tmp_path.rglob("*.gz"))


def _make_folder(root, split_dirs=True, n=6, size=(40, 30)):
    """Two classes: a red square top-left or a blue square bottom-right, with their boxes."""
    rows = []
    for split in (["train", "test"] if split_dirs else [""]):
        for cls, (colour, xy) in {"red": ((255, 0, 0), (2, 2)), "blue": ((0, 0, 255), (20, 14))}.items():
            d = root / split / cls if split else root / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.new("RGB", size, (20, 20, 20))
                img.paste(colour, (xy[0], xy[1], xy[0] + 10, xy[1] + 10))
                path = d / f"{i}.png"
                img.save(path)
                rows.append(f"{path.relative_to(root).as_posix()},{xy[0]},{xy[1]},{xy[0] + 10},{xy[1] + 10}")
    (root / "boxes.csv").write_text("path,x0,y0,x1,y1\n" + "\n".join(rows) + "\n")


def test_image_folder_with_boxes_turns_on_localisation(tmp_path):
    """folder:PATH reads train/ and test/, resizes to image_size and scales boxes.csv with the images."""
    _make_folder(tmp_path)
    data = open_data(Config(data=f"folder:{tmp_path}", image_size=20, test_size=0))
    assert data.class_names == ["blue", "red"] and data.channels == 3 and data.size == (20, 20)
    assert len(data.test) == 12 and data.test.boxes is not None
    red = data.test.boxes[data.test.y == 1][0].tolist()
    assert red == pytest.approx([2 * 20 / 40, 2 * 20 / 30, 12 * 20 / 40, 12 * 20 / 30])
    x, y = data.batch(4, _gen())
    assert x.shape == (4, 3, 20, 20)


def test_image_folder_without_test_dir_gets_a_seeded_split(tmp_path):
    """With no test/ folder a stratified, seeded fifth of each class becomes the test set."""
    _make_folder(tmp_path, split_dirs=False, n=10)
    a = open_data(Config(data=f"folder:{tmp_path}", image_size=16, test_size=0))
    b = open_data(Config(data=f"folder:{tmp_path}", image_size=16, test_size=0, seed=9))
    assert len(a.test) == 4 and sorted(a.test.y.tolist()) == [0, 0, 1, 1]
    assert torch.equal(a.test.x, b.test.x)


@pytest.mark.parametrize("spec, message", [("nope", "unknown data spec"), ("folder:/does/not/exist", "not a directory")])
def test_bad_data_specs_say_what_is_wrong(spec, message):
    """An unknown spec or a missing folder is a DataError with a useful message."""
    with pytest.raises(DataError, match=message):
        open_data(Config(data=spec))


def test_check_dataset_describes_a_folder_or_says_what_layout_it_expects(tmp_path):
    """The app's pre-run check: no image is decoded, the layouts image_folder reads are described, and every
    wrong one is a DataError naming the problem."""
    from PIL import Image

    from masklab.data import DataError, check_dataset
    assert "built in" in check_dataset("shapes")
    for part, n in (("train", 4), ("test", 2)):
        for c in ("a", "b"):
            (tmp_path / "split" / part / c).mkdir(parents=True)
            for i in range(n // 2):
                Image.new("RGB", (4, 4)).save(tmp_path / "split" / part / c / f"{i}.jpg")
    assert check_dataset(f"folder:{tmp_path / 'split'}") == "2 classes (a, b), 4 training and 2 test images"
    (tmp_path / "split" / "test" / "c").mkdir()
    with pytest.raises(DataError, match="different class folders"):
        check_dataset(f"folder:{tmp_path / 'split'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        check_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="no class folders"):
        check_dataset(f"folder:{tmp_path / 'empty' / 'a'}")
    with pytest.raises(DataError, match="not a folder"):
        check_dataset(f"cifar10:{tmp_path / 'absent'}")
    assert "downloaded there" in check_dataset(f"cifar10:{tmp_path / 'absent'}", download=True)
