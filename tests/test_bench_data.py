"""The benchmark's other datasets and the accuracy-vs-area front: the CIFAR-10 subset from the shared archive,
the --datasets table (and its skip note where the archive is absent) and the --front outputs."""
import io
import tarfile

import pytest
from PIL import Image

from masklab import bench_data as bench
from masklab.config import preset
from masklab.data import open_data

TINY = dict(steps=4, log_every=2, test_size=8, batch_size=8)


def _archive(path, per_class=3):
    """A tar.gz with CIFAR-10's layout: cifar10/<split>/<class>/NNNN.jpg, plus a stray file to ignore."""
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for split in ("train", "test"):
            for c, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
                for i in range(per_class):
                    buf = io.BytesIO()
                    Image.new("RGB", (32, 32), colour).save(buf, "JPEG")
                    add(f"cifar10/{split}/{c}/{i:04d}.jpg", buf.getvalue())
        add("cifar10/README.txt", b"not an image")


def test_cifar_folder_unpacks_the_first_n_of_each_class_once(tmp_path):
    """The first N train / M test files of each class by number, in the folder: layout; a second call reuses it."""
    archive = tmp_path / "c.tar.gz"
    _archive(archive)
    root = bench.cifar_folder(2, 1, archive=archive, cache=tmp_path / "cache")
    assert sorted(p.name for p in (root / "train" / "cat").iterdir()) == ["0000.jpg", "0001.jpg"]
    assert [p.name for p in (root / "test" / "dog").iterdir()] == ["0000.jpg"]
    archive.unlink()                                           # cached: the archive is not read again
    assert bench.cifar_folder(2, 1, archive=archive, cache=tmp_path / "cache") == root
    data = open_data(preset("hard-concrete", data=f"folder:{root}", image_size=16, test_size=0))
    assert data.class_names == ["cat", "dog"] and len(data.test) == 2


def test_cifar_folder_asked_for_at_once_is_unpacked_whole_and_once(tmp_path):
    """Workers of a parallel test run ask for the same cache at the same moment: each gets the one folder, whole
    (every file, the marker), and no half-written copy is left beside it; a copy an older version left without
    its marker is replaced."""
    from concurrent.futures import ThreadPoolExecutor
    archive, cache = tmp_path / "c.tar.gz", tmp_path / "cache"
    _archive(archive, per_class=20)
    (cache / "masklab-cifar10-20-5" / "train").mkdir(parents=True)      # half-written, no .complete

    def ask(_):
        root = bench.cifar_folder(20, 5, archive=archive, cache=cache)
        files = list(root.rglob("*.jpg"))                       # read as soon as it returns, others still busy
        return root, len(files), min(f.stat().st_size for f in files)

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(ask, range(4)))
    assert {root for root, _, _ in seen} == {cache / "masklab-cifar10-20-5"}
    assert all(n == 2 * (20 + 5) and smallest > 0 for _, n, smallest in seen)     # two classes, whole files
    assert [p.name for p in cache.iterdir()] == ["masklab-cifar10-20-5"]
    assert (cache / "masklab-cifar10-20-5" / ".complete").exists()


def test_cifar_folder_says_what_is_missing_without_the_shared_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared data"):
        bench.cifar_folder(archive=tmp_path / "absent.tar.gz", cache=tmp_path)


@pytest.mark.skipif(not bench.SHARED_CIFAR.exists(), reason="../shared/data/cifar10-jpeg.tar.gz is absent (a user's "
                    "clone): the real CIFAR-10 archive is only on the project's machines")
def test_the_shared_cifar_archive_gives_ten_classes_of_32px_photos(tmp_path):
    root = bench.cifar_folder(2, 1, cache=tmp_path)
    data = open_data(preset("hard-concrete", data=f"folder:{root}", image_size=32, test_size=0))
    assert len(data.class_names) == 10 and "airplane" in data.class_names
    assert data.channels == 3 and data.size == (32, 32) and len(data.test) == 10


@pytest.fixture
def tiny_datasets(tmp_path, monkeypatch):
    """--datasets on a tiny shapes set, with the shared CIFAR-10 archive absent."""
    monkeypatch.setattr(bench, "SHARED_CIFAR", tmp_path / "absent.tar.gz")
    monkeypatch.setattr(bench.cifar_folder, "__defaults__", (1000, 200, tmp_path / "absent.tar.gz", tmp_path))
    monkeypatch.setitem(bench.DATASETS, "shapes", ({"data": "shapes", "canvas": 24, **TINY}, (0.1,)))
    overrides, targets, references = bench.DATASETS["cluttered-digits-64"]
    monkeypatch.setitem(bench.DATASETS, "cluttered-digits-64", ({**overrides, "canvas": 28, "clutter": 2, **TINY},
                                                                (0.1,), references))


def test_datasets_table_has_the_default_and_its_references_and_notes_a_missing_archive(tmp_path, tiny_datasets):
    """--datasets: a row per dataset, method and target with its seeds, the harder digits with their own oracle-ink
    and the gap to it; CIFAR skipped with the reason."""
    rows = bench.run_datasets(seeds=2, out=tmp_path, log=lambda s: None)
    assert {(r["dataset"], r["method"], r["seed"]) for r in rows} == {
        *((d, m, s) for d in ("shapes", "cluttered-digits-64") for m in ("unmasked", "hard-concrete") for s in (0, 1)),
        *(("cluttered-digits-64", "oracle-ink", s) for s in (0, 1))}
    run = tmp_path / "runs" / "datasets" / "cluttered-digits-64-oracle-ink-s1" / "config.json"
    assert '"oracle": "ink"' in run.read_text() and '"clutter": 2' in run.read_text()
    text = (tmp_path / "DATASETS.md").read_text()
    assert "`python -m masklab bench --datasets --seeds 2`" in text
    assert "| shapes | hard-concrete | 0.1 | 2 |" in text and "| shapes | unmasked | - | 2 |" in text
    assert "- cifar10-32px: skipped," in text and "absent" in text
    frame = __import__("pandas").DataFrame(rows).groupby(["dataset", "method"]).accuracy_hard.mean()
    gap = frame["cluttered-digits-64", "hard-concrete"] - frame["cluttered-digits-64", "oracle-ink"]
    line = next(t for t in text.splitlines() if t.startswith("| cluttered-digits-64 | hard-concrete |"))
    assert line.split(" | ")[6] == f"{gap:+.3f}"                           # the gap to its own oracle-ink
    assert next(t for t in text.splitlines() if t.startswith("| shapes | hard-concrete |")).split(" | ")[6] == "-"


def test_front_writes_every_target_and_both_oracles_and_a_log_scaled_plot_on_any_number_of_workers(tmp_path):
    """--front: the default at each target and the two oracles, a row each per seed, and front.png. With --workers 2
    the runs train in two processes of their own, and the rows, in the same order with the same numbers (the same
    torch threads per run), are the ones one process writes; --workers below 1, or with a mode that trains
    nothing (--report), is refused."""
    import torch
    from masklab.cli import main
    kw = dict(targets=(0.05, 0.2), log=lambda s: None, canvas=24, **TINY)
    rows = bench.run_front(1, out=tmp_path, **kw)
    assert [(r["method"], r["area_target"]) for r in rows] == [
        ("hard-concrete", 0.05), ("hard-concrete", 0.2), ("oracle-ink", None), ("oracle-box", None)]
    assert (tmp_path / "front.csv").read_text().startswith("method,area_target,seed,")
    assert Image.open(tmp_path / "front.png").size[0] > 400
    fig = bench.front_plot(__import__("pandas").read_csv(tmp_path / "front.csv"))
    assert fig.axes[0].get_xscale() == "log"
    two = bench.run_front(1, out=tmp_path / "two", workers=2, threads=torch.get_num_threads(), **kw)
    assert two == rows
    assert (tmp_path / "two" / "front.csv").read_text() == (tmp_path / "front.csv").read_text()
    assert main(["bench", "--workers", "0", "--out", str(tmp_path / "x")]) == 2
    assert main(["bench", "--report", "--workers", "2", "--out", str(tmp_path / "x")]) == 2
    assert main(["bench", "--front", "--workers", "0", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_the_method_table_on_two_workers_has_the_rows_one_process_writes(tmp_path, monkeypatch):
    """bench --workers 2: every (method, seed) trains in a process of its own, then the table is measured and
    written as one process does it: the same rows, numbers and order but the timings (wall time, step cost)."""
    import torch
    from masklab import bench as method_bench
    monkeypatch.setattr(method_bench, "QUICK", {**method_bench.QUICK, **TINY, "canvas": 24})
    kw = dict(methods=["unmasked", "hard-concrete"], seeds=2, quick=True, log=lambda s: None)
    one = method_bench.run_bench(out=tmp_path / "one", **kw)
    two = method_bench.run_bench(out=tmp_path / "two", workers=2, threads=torch.get_num_threads(), **kw)
    timings = {"wall_s", "train_s", "step_cost_ratio"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timings} for r in rows]
    assert [(r["method"], r["seed"]) for r in two] == [("unmasked", 0), ("unmasked", 1), ("hard-concrete", 0),
                                                       ("hard-concrete", 1)]
    assert strip(two) == strip(one)
    assert all((tmp_path / "two" / "runs" / f"{m}-s{s}" / "summary.json").exists() for m, s in [("unmasked", 1)])
    assert "| hard-concrete |" in (tmp_path / "two" / "RESULTS.md").read_text()


def test_an_earlier_defaults_tables_regenerate_with_its_preset(tmp_path, tiny_datasets):
    """--datasets / --front --preset NAME: the runs are that preset's, the rows and the plot are labelled with it,
    and DATASETS.md's command names it; without --front or --datasets the flag is refused (the benchmark's own
    methods are --methods)."""
    from masklab.cli import main
    rows = bench.run_datasets(seeds=1, out=tmp_path, log=lambda s: None, method="hard-concrete-nov29",
                              datasets=["shapes"])
    assert [r["method"] for r in rows] == ["unmasked", "hard-concrete-nov29"]
    run = tmp_path / "runs" / "datasets" / "shapes-hard-concrete-nov29-t0.1-s0" / "config.json"
    assert '"noise_end": 1.0' in run.read_text() and '"damping": 0.0' in run.read_text()
    text = (tmp_path / "DATASETS.md").read_text()
    assert "`python -m masklab bench --datasets --seeds 1 --preset hard-concrete-nov29`: preset hard-concrete-nov29" \
        in text and "| shapes | hard-concrete-nov29 | 0.1 | 1 |" in text
    front = bench.run_front(1, targets=(0.05,), out=tmp_path, log=lambda s: None, method="hard-concrete-nov29",
                            canvas=24, **TINY)
    assert [r["method"] for r in front] == ["hard-concrete-nov29", "oracle-ink", "oracle-box"]
    fig = bench.front_plot(__import__("pandas").read_csv(tmp_path / "front.csv"))
    assert "hard-concrete-nov29" in fig.axes[0].get_title()
    assert any(t.get_text() == "hard-concrete-nov29, each seed" for t in fig.axes[0].get_legend().get_texts())
    assert main(["bench", "--preset", "hard-concrete-nov29", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
