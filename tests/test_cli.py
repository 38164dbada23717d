import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run through the CLI, shared by the eval and mask tests."""
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--steps", "6", "--batch_size", "8", "--canvas", "32", "--test_size", "40",
                 "--log_every", "2", "--width", "4", "--classifier_width", "4", "--device", "cpu",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_train_writes_the_four_run_files(trained):
    """`train --out DIR` writes config.json, model.pt, metrics.csv and summary.json."""
    assert sorted(p.name for p in trained.iterdir()) == ["config.json", "metrics.csv", "model.pt", "summary.json"]
    assert json.loads((trained / "config.json").read_text())["steps"] == 6


def test_eval_json_prints_every_metric(trained, capsys):
    """`eval --json` prints every metric the README lists (metrics.METRIC_NAMES) as one JSON object; on
    cluttered-digits, which knows each digit's box and ink, the localisation metrics are numbers, not null."""
    from masklab.metrics import METRIC_NAMES
    assert main(["eval", "--checkpoint", str(trained), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(METRIC_NAMES) <= set(metrics) and "pointing_game" in METRIC_NAMES
    assert 0 <= metrics["area"] <= 1 and isinstance(metrics["collapsed"], bool)
    for name in METRIC_NAMES:
        if name != "collapsed":
            assert isinstance(metrics[name], float) and 0 <= metrics[name] <= 1, (name, metrics[name])


def test_mask_writes_pngs_and_prints_a_prediction(trained, tmp_path, capsys):
    """`mask` on a photo writes mask, overlay and masked PNGs and prints a JSON line with the prediction."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (120, 80), (200, 120, 40)).save(photo)
    out = tmp_path / "out"
    assert main(["mask", "--checkpoint", str(trained), str(photo), "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["prediction"] in [str(i) for i in range(10)] and len(line["top"]) == 3
    assert line["size"] == [32, 21]                             # fitted into the 32x32 training size
    for kind in ("mask", "overlay", "masked"):
        img = Image.open(out / f"photo.{kind}.png")
        assert img.size == (32, 21)
    assert set(np.unique(np.asarray(Image.open(out / "photo.mask.png")))) <= {0, 255}


def test_mask_refuses_a_bad_image_with_one_line_and_goes_on(trained, tmp_path, capsys):
    """A text file named .png is refused in one line; the good image after it is still processed."""
    bad, good = tmp_path / "bad.png", tmp_path / "good.png"
    bad.write_text("<html>not an image</html>")
    Image.new("L", (10, 10)).save(good)
    code = main(["mask", "--checkpoint", str(trained), str(bad), str(good), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("\n") == 1 and "bad.png" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out)["image"].endswith("good.png")


@pytest.mark.parametrize("argv, message", [
    (["train", "--alpha", "2"], "alpha must be in [0, 1]"),
    (["train", "--steps", "many"], "steps: cannot read"),
    (["train", "--data", "imagenet"], "unknown data spec"),
    (["eval", "--checkpoint", "/nonexistent/run"], "not a folder"),
])
def test_user_mistakes_are_one_line_without_traceback(argv, message, capsys):
    """Bad flags, data specs and checkpoints exit 2 with a single 'masklab: error:' line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error:") and message in err and err.count("\n") == 1


def test_module_entry_point_help_explains_alpha_beta_lambda():
    """`python -m masklab train --help` runs as a real process and explains alpha, beta and lam: the seed loss's
    formula, what each one does, and each flag's own help text (not just the flag names)."""
    from masklab.config import HELP
    result = subprocess.run([sys.executable, "-m", "masklab", "train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())                   # argparse re-wraps the flags' help
    for explanation in ("L = CE + beta * L_mask(m; alpha, lam)",
                        "L_mask = alpha*log(m+lam) + (1-alpha)*log(1-m+lam)",
                        "alpha (seed loss) sparsity pressure in [0, 1]",
                        "above 0.5 the well at m = 0 is deeper than the one at m = 1",
                        "beta weight of the mask penalty; cross-entropy has weight 1",
                        "lam lambda, a small constant inside the logs for numerical stability",
                        "the loss's slope at m = 0 is about alpha / lam"):
        assert explanation in text, explanation
    for name in ("alpha", "beta", "lam", "area_target"):
        assert f"--{name} V {' '.join(HELP[name].split())}" in text, name
    assert "--preset {" in text
