"""The README's "Use it in your own model" example, run exactly as written (examples/own_model.py, which the
README shows verbatim): MaskLab's public gate and constraint in front of a torchvision ResNet-18 on an image folder."""
import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_model.py"


def test_the_readme_shows_the_example_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- examples/own_model.py -->\n```python\n(.*?)```", readme, re.S)
    assert block and block.group(1) == EXAMPLE.read_text(encoding="utf-8")


def _folder(root: Path) -> Path:
    """Two classes told apart by a coloured square on noise, 40 images each, as FOLDER/<class>/<image>.png."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(255, 40, 40), (40, 40, 255)]):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(40):
            a = (rng.random((32, 32, 3)) * 120).astype(np.uint8)
            y, x = rng.integers(0, 20, 2)
            a[y:y + 12, x:x + 12] = colour
            Image.fromarray(a).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_the_example_trains_a_resnet_whose_mask_is_binary_and_shrinks(tmp_path, monkeypatch):
    """30 steps at 32 px: the mask the gate draws is exactly 0/1, its area falls from the open start (~0.88)
    toward the 0.3 target without collapsing, and the constraint's target has reached 0.3."""
    torch.manual_seed(0)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(_folder(tmp_path / "photos")), "30", "32"])
    monkeypatch.syspath_prepend(str(ROOT))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        names = runpy.run_path(str(EXAMPLE), run_name="__main__")
    area = float(re.search(r"step 30: loss \S+, mask area ([0-9.]+), target ([0-9.]+)", out.getvalue()).group(1))
    assert names["constraint"].target(30) == pytest.approx(0.3)
    x, _ = next(iter(names["loader"]))
    model = names["model"].train()
    with torch.no_grad():
        _, mask, expected = model(x)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}                        # hard: exactly 0/1
    assert 0.005 < area < 0.8 and 0.005 < mask.mean().item() < 0.8          # moved toward 0.3, not collapsed
    assert 0 < expected.item() < 0.8
