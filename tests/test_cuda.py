"""The CUDA path (bf16 autocast, generators on the GPU, checkpoints moved between devices).

Skipped where torch sees no CUDA GPU (CI, the 2-core dev machine); on a GPU machine:
    python -m pytest tests/test_cuda.py
"""
import pytest
import torch

from masklab.checkpoint import load_run
from masklab.config import preset
from masklab.metrics import evaluate
from masklab.runs import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# The quick bench's schedule on a smaller canvas: learns in a few seconds on a GPU.
QUICK_CUDA = dict(canvas=40, steps=400, batch_size=64, log_every=50, test_size=300, warmup=0.3, anneal_frac=0.4,
                  area_target=0.1, device="cuda")


def test_default_trains_on_cuda_and_its_checkpoint_gives_the_same_masks_on_the_cpu(tmp_path):
    """A short default run under bf16 autocast learns (far above the 10% of chance, mask well below full); its
    checkpoint loads on the CPU and gives (nearly) the same hard masks."""
    cfg = preset("hard-concrete", seed=0, **QUICK_CUDA)
    run_dir, summary = fit(cfg, out=tmp_path / "run")
    assert summary["status"] == "done" and summary["device"].startswith("cuda")
    m = summary["metrics"]
    assert m["accuracy_hard"] > 0.5 and 0.02 < m["area"] < 0.4, m
    _, model, _ = load_run(run_dir, "cpu")
    _, gpu_model, _ = load_run(run_dir, "cuda")
    x = torch.rand(16, 1, 40, 40)
    on_cpu = model.gate_relaxed(x, cfg.temperature_end) > 0.5
    on_gpu = (gpu_model.gate_relaxed(x.cuda(), cfg.temperature_end) > 0.5).cpu()
    assert (on_cpu == on_gpu).float().mean() > 0.99          # TF32 convolutions may flip a pixel at the edge


def test_training_forward_under_bf16_autocast_shows_the_classifier_an_exact_binary_mask():
    """Straight-through under autocast: the forward mask is exactly 0 or 1, the gradient still reaches the
    attention branch."""
    from masklab.data import open_data
    from masklab.models import build_model
    cfg = preset("hard-concrete", canvas=32, test_size=8, device="cuda")
    data = open_data(cfg, "cuda")
    model = build_model(cfg, data.channels, data.classes).cuda()
    x, y = data.batch(16, torch.Generator(device="cuda").manual_seed(0))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, 2 / 3, torch.Generator(device="cuda").manual_seed(1))
        loss = torch.nn.functional.cross_entropy(out.logits.float(), y) + out.area.float()
    assert set(out.mask.unique().tolist()) <= {0.0, 1.0}
    loss.backward()
    assert model.attention.body[-1].weight.grad.abs().sum() > 0


def test_evaluate_on_cuda_matches_the_cpu():
    """The metrics of one untrained model on one test set agree between devices."""
    from masklab.data import open_data
    from masklab.models import build_model
    cfg = preset("hard-concrete", canvas=32, test_size=64, init_bias=0.5, seed=3)   # logits off the l = 0 edge
    data = open_data(cfg, "cpu")
    model = build_model(cfg, data.channels, data.classes)
    on_cpu = evaluate(model, data.test, cfg.temperature_end)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False                          # fp32 convolutions, like the CPU's
    try:
        on_gpu = evaluate(model.cuda(), data.test.to("cuda"), cfg.temperature_end)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert on_gpu["area"] == pytest.approx(on_cpu["area"], abs=0.01)
    assert on_gpu["accuracy_hard"] == pytest.approx(on_cpu["accuracy_hard"], abs=0.05)


def test_an_image_folder_streams_to_the_gpu_through_pinned_memory(tmp_path):
    """folder: on CUDA: loader workers decode into pinned memory, batches arrive on the GPU in [0, 1], and the
    same seed gives the same batch as on the CPU."""
    import numpy as np
    from PIL import Image

    from masklab.config import Config
    from masklab.data import open_data
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "f" / c / f"{i}.png")
    cfg = Config(data=f"folder:{tmp_path / 'f'}", image_size=16, workers=1)
    on_gpu = open_data(cfg, "cuda")
    x, y = on_gpu.batch(4, None)
    assert x.device.type == "cuda" and y.device.type == "cuda" and 0 <= x.min() and x.max() <= 1
    assert on_gpu.sampler.images is not None and on_gpu.test.x.device.type == "cuda"
    x_cpu, y_cpu = open_data(cfg).batch(4, None)
    assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)
