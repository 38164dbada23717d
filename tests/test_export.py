"""Export: the mask module written as TorchScript / a torch.export program / ONNX gives the masks MaskLab gives."""
import pytest
import torch

from masklab.checkpoint import load_run
from masklab.config import preset
from masklab.data import open_data
from masklab.export import ExportError, export
from masklab.metrics import predict
from masklab.runs import fit

TINY = dict(canvas=32, clutter=2, batch_size=8, steps=2, log_every=1, test_size=40, width=4, classifier_width=4,
            area_target=0.2, init_bias=-0.65, device="cpu")   # bias: a mask about half open


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir, _ = fit(preset("hard-concrete", **TINY), out=tmp_path_factory.mktemp("export") / "run")
    return run_dir


def _masklab_masks(run_dir):
    cfg, model, _ = load_run(run_dir)
    test = open_data(cfg).test
    m = predict(model, test.x, cfg.temperature_end)[0]
    return test.x, m


@pytest.mark.parametrize("fmt, load", [
    ("torchscript", lambda p: torch.jit.load(str(p))),
    ("export", lambda p: torch.export.load(str(p)).module()),
])
def test_an_exported_mask_module_gives_the_masks_masklab_gives(run, tmp_path, fmt, load):
    path = export(run, fmt, tmp_path / f"mask.{fmt}")
    x, m = _masklab_masks(run)
    hard, m_eval = load(path)(x)                       # the whole test set at once: another batch size
    assert torch.equal(hard, (m > 0.5).float())
    assert torch.allclose(m_eval, m, atol=1e-6)
    assert 0 < hard.mean() < 1


def test_onnx_export_matches_or_says_what_it_needs(run, tmp_path):
    try:
        path = export(run, "onnx", tmp_path / "mask.onnx")
    except ExportError as e:
        assert "pip install -r requirements-export.txt" in str(e)
        pytest.skip(f"ONNX export unavailable here: {e}")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported graph")
    x, m = _masklab_masks(run)
    hard, m_eval = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    assert (torch.from_numpy(hard) == (m > 0.5).float()).all()
    assert torch.allclose(torch.from_numpy(m_eval), m, atol=1e-5)


def test_an_unmasked_run_has_nothing_to_export(tmp_path):
    run_dir, _ = fit(preset("unmasked", **{**TINY, "steps": 2}), out=tmp_path / "unmasked")
    with pytest.raises(ExportError, match="no learned mask"):
        export(run_dir, "torchscript")


def test_the_cli_exports_and_refuses_in_one_line(run, tmp_path, capsys):
    from masklab.cli import main
    assert main(["export", "--checkpoint", str(run), "--format", "export", "--out", str(tmp_path / "m.pt2")]) == 0
    assert (tmp_path / "m.pt2").is_file() and "hard mask" in capsys.readouterr().out
    assert main(["export", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "masklab: error:" in capsys.readouterr().err
