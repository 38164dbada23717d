"""The shipped demo checkpoint: loads safely, and meets the numbers the README promises."""
import json
from pathlib import Path

import pytest

from masklab.checkpoint import load_run
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
