"""The shipped demo checkpoint: loads safely, and meets the numbers the README promises."""
import json
from pathlib import Path

import pytest
import torch

from masklab.bench_data import SHARED_CIFAR, cifar_folder
from masklab.checkpoint import load_run
from masklab.config import Config
from masklab.data import open_data
from masklab.metrics import evaluate

DEMO = Path(__file__).resolve().parent.parent / "checkpoints" / "demo"


@pytest.fixture(scope="module")
def demo():
    return load_run(DEMO)


def test_demo_checkpoint_is_small_and_complete():
    """The demo run folder has its four files and a model.pt under 2 MB."""
    assert sorted(p.name for p in DEMO.iterdir()) == ["config.json", "metrics.csv", "model.pt", "summary.json"]
    assert (DEMO / "model.pt").stat().st_size < 2 * 2 ** 20


def test_demo_meets_its_targets_on_the_cluttered_digits_test_set(demo):
    """Hard-mask accuracy >= 0.95 with <= 6% of the pixels, a binary mask (bimodality >= 0.99), no collapse."""
    cfg, model, summary = demo
    m = evaluate(model, open_data(cfg).test, cfg.temperature_end)
    assert m["accuracy_hard"] >= 0.95, m
    assert m["area"] <= 0.06, m
    assert m["bimodality"] >= 0.99, m
    assert not m["collapsed"], m
    assert m == pytest.approx(summary["metrics"]), "summary.json no longer matches the checkpoint"


def test_demo_is_the_default_trained_as_the_readme_says(demo):
    """README "The digit demo": the default with 3000 steps and a settling learning rate, nothing else."""
    cfg, model, summary = demo
    assert cfg == Config(steps=3000, lr_decay=True)


def test_demo_masks_a_real_photo(tmp_path, capsys):
    """`mask` with the demo on one of scikit-learn's bundled photos writes PNGs and predicts a digit."""
    from sklearn.datasets import load_sample_image
    from PIL import Image
    from masklab.cli import main
    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(photo)
    assert main(["mask", "--checkpoint", str(DEMO), str(photo), "--out", str(tmp_path)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["prediction"] in list("0123456789") and (tmp_path / "china.overlay.png").exists()


# --- the photo demo (checkpoints/demo-photos: the default at 30% on CIFAR-10, README "The photo demo") -------------

PHOTOS = DEMO.parent / "demo-photos"
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# The fields the README's photo-demo command sets; every other field is the default's.
PHOTO_COMMAND = ("data", "image_size", "area_target", "steps", "batch_size", "lr_decay", "test_size", "log_every",
                 "seed", "classifier_width", "average")


@pytest.fixture(scope="module")
def photos():
    return load_run(PHOTOS)


def test_photo_demo_is_small_complete_and_reads_colour_photos(photos):
    """The default method (hard concrete with the area constraint), not an option: the photo issue asks for it."""
    cfg, model, summary = photos
    assert sorted(p.name for p in PHOTOS.iterdir()) == ["config.json", "metrics.csv", "model.pt", "summary.json"]
    assert (PHOTOS / "model.pt").stat().st_size < 2 * 2 ** 20
    assert (cfg.gate, cfg.constraint, cfg.area_target, model.channels) == ("hard_concrete", True, 0.3, 3)
    assert cfg == Config(**{k: getattr(cfg, k) for k in PHOTO_COMMAND}), "not the default but the README's command"
    assert summary["data"]["class_names"] == CIFAR10 and summary["data"]["input_size"] == [32, 32]


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_photo_demo_keeps_a_part_of_any_photo(photos, name):
    """Any upload, whatever its size, is fitted into 32x32; the 0/1 mask keeps a part of it, never nothing and
    never everything (on the test photos 14-50% a photo)."""
    from sklearn.datasets import load_sample_image
    from PIL import Image
    from masklab.images import run_mask, to_tensor
    cfg, model, summary = photos
    x = to_tensor(Image.fromarray(load_sample_image(name)), 3, (32, 32))
    r = run_mask(model, x, cfg.temperature_end)
    assert set(r.hard.unique().tolist()) == {0.0, 1.0} and 0.1 < r.area < 0.6 and 0 < r.probs.max() <= 1


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="needs ../shared/data/cifar10-jpeg.tar.gz (absent in a user's "
                                                         "clone; CI has it)")
def test_photo_demo_on_the_first_test_photo_of_each_class(photos):
    """The ten photos of the README's figure (never seen in training): the demo names at least 4 of them right
    (chance: 1; it names 8) and their kept pixels lean to the centre quarter, where CIFAR-10 puts the object
    (25% by chance)."""
    from masklab.images import open_image, run_mask, to_tensor
    cfg, model, summary = photos
    folder = cifar_folder(train_per_class=1, test_per_class=1) / "test"
    right, centre, kept = 0, 0.0, 0.0
    for name in CIFAR10:
        r = run_mask(model, to_tensor(open_image(folder / name / "0000.jpg"), 3, (32, 32)), cfg.temperature_end)
        right += r.top(CIFAR10, 1)[0]["class"] == name
        centre, kept = centre + float(r.hard[0][..., 8:24, 8:24].sum()), kept + float(r.hard[0].sum())
    assert right >= 4 and centre / kept > 0.35, (right, centre / kept)


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="needs ../shared/data/cifar10-jpeg.tar.gz (absent in a user's "
                                                         "clone; CI has it)")
def test_photo_demo_numbers_on_2000_of_the_cifar10_test_photos(photos):
    """The README's numbers (summary.json: all 10,000 test photos, as `masklab eval --checkpoint
    checkpoints/demo-photos` gives them again) hold on the first 200 test photos of each class, to within what a
    fifth of the photos can differ from all of them (accuracy: 3.5 standard errors of the subset's difference,
    0.035; the kept area and bimodality are averages over many pixels a photo); and the mask leans to the photo's
    centre, where CIFAR-10 puts its object: the centre quarter holds far more than its 25% of the kept pixels.
    (All 10,000 took 45 s of the suite's five minutes; these take a fifth of that.)"""
    cfg, model, summary = photos
    folder = cifar_folder(train_per_class=1, test_per_class=200)
    test = open_data(cfg.replace(data=f"folder:{folder}", test_size=0)).test
    assert len(test.x) == 2000 and test.y.bincount().tolist() == [200] * 10
    m, whole = evaluate(model, test, cfg.temperature_end), summary["metrics"]
    for key, within in (("accuracy_hard", 0.035), ("accuracy_soft", 0.035), ("accuracy_full", 0.035),
                        ("area", 0.01), ("bimodality", 0.005), ("contiguity", 0.03)):
        assert abs(m[key] - whole[key]) < within, (key, m[key], whole[key])
    assert not m["collapsed"] and not whole["collapsed"] and 0.28 < whole["area"] < 0.32
    assert whole["accuracy_hard"] > 0.60 and whole["bimodality"] > 0.975      # README: 0.606, 0.976
    with torch.no_grad():                              # the mask alone: no classifier passes
        kept = model.eval().gate_relaxed(test.x, cfg.temperature_end) > 0.5
    centre = kept[..., 8:24, 8:24].sum() / kept.sum()
    per_photo = kept.flatten(1).float().mean(1)
    assert centre > 0.5, centre                                      # README: 56%
    assert per_photo.min() > 0.1 and per_photo.max() < 0.6, (per_photo.min(), per_photo.max())   # README: 14-50%
