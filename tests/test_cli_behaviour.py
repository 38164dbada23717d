"""What the command line does, beyond parsing: --preset is the base the flags apply to (train and sweep),
the exit status says whether a run finished, eval --data refuses a dataset the model cannot read, --device
cuda without a GPU is a one-line error, mask --keep-size keeps the image's own size, and train's progress bar
(tqdm) reaches the last step, as whole lines where stderr is not a terminal."""
import io
import json
import sys
import types

import pytest
import torch
from PIL import Image

from masklab.cli import build_parser, config_from_args, main
from masklab.config import PRESETS, Config, preset
from masklab.sweep import make_plan

TINY = {"canvas": "32", "clutter": "2", "batch_size": "8", "steps": "6", "log_every": "2", "test_size": "40",
        "width": "4", "classifier_width": "4", "device": "cpu"}
FLAGS = [a for k, v in TINY.items() for a in (f"--{k}", v)]
TINY_CONFIG = {k: Config.from_query(TINY).to_dict()[k] for k in TINY}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-behaviour") / "run"
    assert main(["train", *FLAGS, "--out", str(out), "--quiet"]) == 0
    return out


# --- --preset ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_train_preset_alone_gives_that_preset(name):
    """`train --preset NAME` with no other flag is exactly preset(NAME), not the default method."""
    assert config_from_args(build_parser().parse_args(["train", "--preset", name])) == preset(name)


def test_flags_apply_on_top_of_the_preset():
    """`--preset seed --alpha 0.5 --steps 7`: the seed method (hard sigmoid, seed loss, no constraint) with
    those two fields changed."""
    cfg = config_from_args(build_parser().parse_args(["train", "--preset", "seed", "--alpha", "0.5", "--steps", "7"]))
    assert cfg == preset("seed", alpha=0.5, steps=7)
    assert (cfg.gate, cfg.mask_loss, cfg.constraint) == ("hard_sigmoid", "seed", False)


def test_from_query_parses_on_top_of_its_base():
    base = preset("sorted-area", steps=9)
    assert Config.from_query({}, base=base) == base
    assert Config.from_query({"beta": "2"}, base=base) == base.replace(beta=2.0)
    assert Config.from_query({"beta": "2"}) == Config(beta=2.0)                 # no base: the defaults


def test_cli_train_preset_seed_trains_the_seed_method(tmp_path, capsys):
    """The run folder of `train --preset seed` holds the seed method's config, labelled with the preset."""
    out = tmp_path / "seed"
    assert main(["train", "--preset", "seed", *FLAGS, "--out", str(out), "--quiet"]) == 0
    saved = Config.from_json((out / "config.json").read_text())
    assert saved == preset("seed", **TINY_CONFIG)
    assert json.loads((out / "summary.json").read_text())["label"] == "seed"


def test_every_sweep_trial_is_the_sweeps_preset():
    """`sweep --preset seed`: every trial is the seed method with its axis value, not the default method."""
    plan = make_plan("seed", ["alpha=0.5,0.9"], overrides=TINY)
    assert plan.base == preset("seed", **TINY_CONFIG)
    assert plan.trials == [preset("seed", **TINY_CONFIG, alpha=a) for a in (0.5, 0.9)]


def test_cli_sweep_preset_reaches_the_trials_run_folders(tmp_path, capsys):
    sets = [a for k, v in {**TINY, "steps": "2"}.items() for a in ("--set", f"{k}={v}")]
    assert main(["sweep", "--preset", "sorted-area", "--grid", "beta=1,10", *sets, "--backend", "sequential",
                 "--root", str(tmp_path / "ck"), "--out", str(tmp_path / "sw"), "--name", "p"]) == 0
    for i, beta in enumerate((1.0, 10.0)):
        saved = Config.from_json((tmp_path / "ck" / f"p-t00{i}" / "config.json").read_text())
        assert saved == preset("sorted-area", **{**TINY_CONFIG, "steps": 2}, beta=beta)


# --- exit status ------------------------------------------------------------------------------------------

def test_train_exits_1_on_a_failed_run_and_says_why(tmp_path, monkeypatch, capsys):
    """A diverged run is saved, but `train` exits 1 and prints its status and reason."""
    import masklab.runs as runs
    real = runs.open_data

    def poisoned(cfg, device="cpu", progress=None):
        data = real(cfg, device, progress)
        sampler = data.sampler

        class Poisoned:
            def batch(self, n, generator):
                x, y = sampler.batch(n, generator)
                return torch.full_like(x, float("nan")), y

        data.sampler = Poisoned()
        return data

    monkeypatch.setattr(runs, "open_data", poisoned)
    assert main(["train", *FLAGS, "--out", str(tmp_path / "bad"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("failed: ") and "reason: non-finite loss" in out
    assert json.loads((tmp_path / "bad" / "summary.json").read_text())["status"] == "failed"


def test_train_exits_1_on_a_stopped_run(tmp_path, monkeypatch, capsys):
    import masklab.runs as runs
    real = runs.fit
    monkeypatch.setattr(runs, "fit", lambda cfg, **kw: real(cfg, **kw, should_stop=lambda: True))
    assert main(["train", *FLAGS, "--out", str(tmp_path / "stopped"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("stopped: ") and "reason: stopped at step 2 of 6" in out


def test_train_exits_0_on_a_finished_run(tmp_path, capsys):
    assert main(["train", *FLAGS, "--out", str(tmp_path / "ok"), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("done: ")


# --- the progress bar -------------------------------------------------------------------------------------

def test_train_progress_off_a_terminal_is_a_line_per_tenth_ending_at_every_step(tmp_path, capsys):
    """Captured (no terminal), tqdm's meter is printed as whole lines, no carriage returns: the last one is
    100% at steps/steps with the final loss, accuracy and area; stdout keeps only the summary."""
    assert main(["train", *FLAGS, "--steps", "20", "--out", str(tmp_path / "bar")]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "\r" not in captured.err and 1 < len(lines) <= 11
    assert lines[-1].startswith("100%|") and "20/20" in lines[-1]
    assert all(" loss " in line and " area " in line for line in lines)
    assert [int(line.split("/")[0].split()[-1]) for line in lines] == sorted({2 * k for k in range(1, 11)})
    assert captured.out.startswith("done: ")


def test_progress_on_a_terminal_is_a_live_tqdm_bar_that_reaches_the_total(monkeypatch):
    """On a terminal the bar redraws in place (carriage returns) and its count ends at the total steps."""
    from masklab.cli import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    bar = Progress(6)
    for step in (2, 4, 6):
        bar(types.SimpleNamespace(step=step, seconds=step / 10, loss=0.5, accuracy=0.9, area=0.1, target=0.05))
    bar.close()
    text = sys.stderr.getvalue()
    assert bar.bar.n == 6 and "\r" in text and "6/6" in text.split("\r")[-1]


# --- eval --data, --device ---------------------------------------------------------------------------------

def test_eval_data_with_another_channel_count_is_refused_in_one_line(trained, capsys):
    """A 1-channel model evaluated on the RGB `shapes` set: exit 2 and one line naming both channel counts."""
    assert main(["eval", "--checkpoint", str(trained), "--data", "shapes", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: shapes has 3 channels") and "expects 1" in err and err.count("\n") == 1


def test_eval_data_evaluates_on_that_data(tmp_path, capsys):
    """`--data` really switches the test set: a 3-channel `shapes` model evaluated on a folder of RGB images with
    as many classes reports on the folder (no boxes there, so no localisation numbers)."""
    run = tmp_path / "shapes-run"
    assert main(["train", *FLAGS, "--data", "shapes", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--json", "--device", "cpu"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert own["precision_in_box"] is not None                      # shapes knows its boxes
    for k, name in enumerate(("disk", "square", "triangle", "cross")):
        for i in range(5):
            (tmp_path / "folder" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 40), (50 * k, 20 * i, 100)).save(tmp_path / "folder" / name / f"{i}.png")
    assert main(["eval", "--checkpoint", str(run), "--json", "--device", "cpu",
                 "--data", f"folder:{tmp_path / 'folder'}"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["precision_in_box"] is None and other["pointing_game"] is None
    assert 0 <= other["accuracy_hard"] <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("command", ["train", "eval"])
def test_device_cuda_without_a_gpu_is_a_one_line_error(command, trained, tmp_path, capsys):
    argv = (["train", *FLAGS, "--device", "cuda", "--out", str(tmp_path / "never"), "--quiet"] if command == "train"
            else ["eval", "--checkpoint", str(trained), "--device", "cuda"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: device cuda was asked for, but torch sees no CUDA GPU")
    assert err.count("\n") == 1 and not (tmp_path / "never").exists()


# --- mask --keep-size -------------------------------------------------------------------------------------

def test_mask_keep_size_keeps_the_images_own_size(trained, tmp_path, capsys):
    """Without the flag a 120x80 photo is fitted into the 32x32 training size (32x21); with --keep-size the
    model sees, and the PNGs have, 120x80."""
    photo = tmp_path / "photo.png"
    Image.new("L", (120, 80), 128).save(photo)
    for flag, size in (([], [32, 21]), (["--keep-size"], [120, 80])):
        out = tmp_path / ("kept" if flag else "fitted")
        assert main(["mask", "--checkpoint", str(trained), str(photo), "--out", str(out), *flag]) == 0
        assert json.loads(capsys.readouterr().out)["size"] == size
        for kind in ("mask", "overlay", "masked"):
            assert list(Image.open(out / f"photo.{kind}.png").size) == size
