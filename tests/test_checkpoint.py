import json
import os
from pathlib import Path

import pytest
import torch

from masklab.checkpoint import CheckpointError, load_run, load_state, write_atomic
from masklab.runs import fit


@pytest.fixture
def run_dir(tiny, tmp_path):
    path, _ = fit(tiny, out=tmp_path / "run")
    return path


def test_save_then_load_gives_identical_predictions(tiny, run_dir):
    """A loaded run folder rebuilds the same model: identical mask and class logits."""
    from masklab.data import open_data
    from masklab.models import build_model
    cfg, model, summary = load_run(run_dir)
    assert cfg == tiny and summary["status"] == "done"
    x = open_data(tiny).test.x[:8]
    again = build_model(cfg, 1, 10)
    again.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    again.eval()
    a, b = model(x, 2 / 3), again(x, 2 / 3)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.relaxed, b.relaxed)


def test_run_folder_has_the_four_files_and_no_temp_files(run_dir):
    """config.json, model.pt, metrics.csv, summary.json; atomic writes leave nothing else behind."""
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "metrics.csv", "model.pt", "summary.json"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"status", "metrics", "data", "steps_done", "train_s"} <= set(summary)
    assert (run_dir / "metrics.csv").read_text().startswith("step,loss,ce,mask_loss,accuracy,area")


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_in_model_pt_executes_nothing(run_dir, tmp_path):
    """A model.pt whose unpickling would create a file is refused, and the file is never created."""
    proof = tmp_path / "pwned"
    torch.save({"classifier.head.weight": _Payload(str(proof))}, run_dir / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt"):
        load_run(run_dir)
    assert not proof.exists()


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "config.json").unlink(), "config.json: missing"),
    (lambda d: (d / "config.json").write_text("{not json"), "config.json: config is not valid JSON"),
    (lambda d: (d / "config.json").write_text('{"alpah": 1}'), "unknown config keys"),
    (lambda d: (d / "summary.json").write_text("[]"), "summary.json"),
    (lambda d: (d / "model.pt").write_bytes(b"garbage"), "model.pt"),
    (lambda d: (d / "model.pt").unlink(), "model.pt: missing"),
    (lambda d: (d / "config.json").write_text('{"classifier_width": 8, "width": 4, "canvas": 32}'),
     "weights do not fit"),
    (lambda d: torch.save([1, 2, 3], d / "model.pt"), "not a state_dict"),
])
def test_broken_run_folders_give_a_clear_error_naming_the_file(run_dir, breakage, message):
    """Each kind of damage is one CheckpointError that names the file and the problem."""
    breakage(run_dir)
    with pytest.raises(CheckpointError, match=message):
        load_run(run_dir)


def test_non_finite_weights_are_refused(run_dir):
    """A state_dict with NaN weights loads as an error, not as a model that predicts garbage."""
    state = load_state(run_dir / "model.pt")
    state["classifier.head.bias"][0] = float("nan")
    torch.save(state, run_dir / "model.pt")
    with pytest.raises(CheckpointError, match="non-finite"):
        load_run(run_dir)


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    """A crash during a save leaves the previous file intact and no temp file behind."""
    target = tmp_path / "model.pt"
    write_atomic(target, b"old")

    def crash(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_hard_concrete_run_saved_before_clamp_backward_existed_loads_as_trained_through_the_clamp(tmp_path):
    """A missing field takes its default, except clamp_backward for hard concrete: runs saved before the field
    existed trained with the backward through the clamp, so that is what their config says (and what
    `bench --resume` compares against)."""
    from masklab.checkpoint import read_config
    from masklab.config import Config
    for gate, written, expected in [("hard_concrete", None, True), ("hard_concrete", False, False),
                                    ("hard_concrete", True, True), ("binary_concrete", None, False)]:
        d = Config(gate=gate).to_dict()
        if written is None:
            del d["clamp_backward"]
        else:
            d["clamp_backward"] = written
        (tmp_path / "config.json").write_text(json.dumps(d))
        assert read_config(tmp_path).clamp_backward is expected, (gate, written)


def test_a_run_saved_before_the_2026_12_01_default_reads_back_as_its_pinned_preset(tmp_path):
    """Runs saved before noise_end, damping and gain_site existed trained without the shrinking noise and the
    damping: they read back as exactly their preset's config today (hard-concrete-nov29, the oracles, top-k), so
    `bench --resume` and the front's reuse of the benchmark's oracle runs keep them instead of training again."""
    from masklab.bench import finished
    from masklab.checkpoint import read_config
    from masklab.config import preset
    for name in ("hard-concrete-nov29", "oracle-ink", "top-k", "hard-concrete-plain"):
        d = preset(name, seed=2).to_dict()
        for field in ("noise_end", "damping", "gain_site"):
            del d[field]
        (tmp_path / "config.json").write_text(json.dumps(d))
        assert read_config(tmp_path) == preset(name, seed=2), name
        (tmp_path / "summary.json").write_text(json.dumps({"status": "done", "metrics": {}}))
        assert finished(tmp_path, preset(name, seed=2)) is not None, name
    assert read_config(tmp_path) != preset("hard-concrete", seed=2)     # today's default is another config


def test_a_run_saved_before_weight_averaging_reads_back_as_the_default_of_its_day(tmp_path):
    """Runs saved before `average` existed (the photo demo among them) ended with the last step's classifier: they read
    back as hard-concrete-dec01pm, the default of their day, not as today's default that averages."""
    from masklab.checkpoint import read_config
    from masklab.config import preset
    d = preset("hard-concrete", seed=1).to_dict()
    del d["average"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert read_config(tmp_path) == preset("hard-concrete-dec01pm", seed=1) != preset("hard-concrete", seed=1)
    assert read_config(Path(__file__).parents[1] / "checkpoints" / "demo-photos").average == 0.0
