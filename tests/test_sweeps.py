import json

import pytest

from medcolor.cli import main
from medcolor.core.errors import UsageError
from medcolor.training.sweeps import expand, load_sweep, parse_shard, shard


def test_thesis_sweeps_expand_to_their_grids():
    t51 = expand(load_sweep("table5-1"))
    assert len(t51) == 2 * 4 * 2 * 3 and len(set(t51)) == 48
    t56 = expand(load_sweep("table5-6"))
    assert len(t56) == 4 * 3 * 6
    assert {dict(o.split('=') for o in j.overrides)['data.subset.fraction'] for j in t56} == \
        {'0.1', '0.05', '0.01', '0.005', '0.002', '0.001'}  # thesis Table 5.6: six sizes
    assert "data.subset.seed=8829" in t56[-1].overrides or any("data.subset.seed=8829" in j.overrides for j in t56)


@pytest.mark.parametrize("n", [2, 3, 7, 8])
def test_shards_cover_the_sweep_exactly_once(n):
    jobs = expand(load_sweep("table5-1"))
    parts = [shard(jobs, i, n) for i in range(1, n + 1)]
    assert sorted(sum(parts, []), key=jobs.index) == jobs
    for part in parts:  # a mode-2 job shares its shard with the mode-1 run it starts from
        for job in part:
            if job.recipe.endswith("mode2") and "baseline" not in job.recipe:
                assert any(j.recipe == job.recipe.replace("mode2", "mode1") and j.group == job.group for j in part)
    assert all(parts)  # 30 chains (2 backbones x 3 seeds x 5), so 8 machines all get work


def test_chains_start_at_the_recipe_others_start_from():
    from medcolor.training.sweeps import chain_roots

    roots = chain_roots(["chexpert-deconv-mode2", "chexpert-deconv-mode1", "chexpert-colorU-mode1"])
    assert roots == {"chexpert-deconv-mode2": "chexpert-deconv-mode1", "chexpert-deconv-mode1": "chexpert-deconv-mode1",
                     "chexpert-colorU-mode1": "chexpert-colorU-mode1"}


def test_a_recipe_with_two_parents_joins_both_chains():
    from medcolor.training.sweeps import chain_roots

    stages = ["nih14-aecnn-stage1", "nih14-aecnn-stage2", "nih14-aecnn-stage3"]  # stage 3 starts from 1 and 2
    assert len(set(chain_roots(stages).values())) == 1
    assert len(set(chain_roots(stages[:2]).values())) == 2


def test_bad_shard():
    with pytest.raises(UsageError, match="i/n"):
        parse_shard("1-2")
    with pytest.raises(UsageError, match="between 1 and n"):
        parse_shard("3/2")


def test_stopped_sweep_restarts_with_only_the_missing_runs(tmp_path, capsys):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text("recipes: [demo]\nbackbones: [efficientnet_lite0]\nseeds: [0, 1]\n"
                     "overrides: [train.epochs=1, train.image_size=32, train.bs=64, train.lr_find=false]\n")
    runs = tmp_path / "runs"
    assert main(["run", "sweep", str(sweep), "--shard", "1/2", "--runs-dir", str(runs), "--json"]) == 0  # "stopped"
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["status"] for r in first] == ["ran"]
    assert main(["run", "sweep", str(sweep), "--runs-dir", str(runs), "--json"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["status"] for r in second] == ["done", "ran"]
    assert len(list((runs / "demo").iterdir())) == 2
    assert main(["run", "sweep", str(sweep), "--runs-dir", str(runs), "--dry-run", "--json"]) == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])] == ["done", "done"]


def test_table_5_6_dry_run_lists_six_subset_sizes(tmp_path, capsys):
    assert main(["run", "sweep", "table5-6", "--dry-run", "--runs-dir", str(tmp_path), "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sizes = {o.split("=")[1] for j in jobs for o in j["job"].split() if o.startswith("data.subset.fraction=")}
    assert len(jobs) == 72 and sizes == {"0.1", "0.05", "0.01", "0.005", "0.002", "0.001"}
    assert {j["status"] for j in jobs} == {"todo"}


def test_a_list_of_grids_is_their_union(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("recipes: [demo]\nseeds: [0]\ngrid:\n  - model.colorizer: [none, coloru]\n"
                    "  - {model.colorizer: [coloru], model.weights: [null]}\n")
    jobs = expand(load_sweep(str(path)))
    assert [j.overrides[-2:] for j in jobs][-1] == ("model.weights=null", "train.seed=0")
    assert len(jobs) == 3 and len({j.group for j in jobs}) == 3


def test_the_transfer_study_sweep():
    jobs = expand(load_sweep("transfer-study"))
    assert len(jobs) == (7 + 2) * 2 * 3
    random = [j for j in jobs if "model.weights=null" in j.overrides]
    assert {o for j in random for o in j.overrides if o.startswith("model.colorizer")} == \
        {"model.colorizer=none", "model.colorizer=coloru"}


def test_two_concurrent_sweeps_train_every_job_once(tmp_path):
    """Two `run sweep demo` processes on one runs folder: each job claimed by one, every folder complete."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "medcolor", "run", "sweep", "demo", "train.epochs=1", "train.image_size=32",
           "data.subset.fraction=0.25",
           "train.lr_find=false", "--runs-dir", str(tmp_path), "--quiet", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outs]
    reports = [json.loads(o[0].decode().strip().splitlines()[-1]) for o in outs]
    ran = [r["run_dir"] for rep in reports for r in rep if r["status"] == "ran"]
    assert len(ran) == len(set(ran)) == 4  # 2 recipes x 2 colorizers, each trained by exactly one sweep
    for recipe in ("demo", "demo-mode2"):
        folders = [p for p in (tmp_path / recipe).iterdir()]
        assert len(folders) == 2 and all(json.loads((p / "metrics.json").read_text())["finished"] for p in folders)
    assert not list((tmp_path / ".claims").iterdir())  # every claim released


def test_medmnist_plus_runs_its_protocols_and_report_prints_auc_and_acc_per_row(tmp_path, capsys):
    from fixtures import write_npz

    write_npz(tmp_path / "mm", "pneumoniamnist")
    data = [f"data.root={tmp_path / 'mm'}", "data.name=pneumoniamnist", "train.epochs=1", "data.pad_to=32"]
    for part in ("1/84", "2/84", "3/84"):  # end-to-end, linear probe and k-NN at 28 px, no colorizer, the first seed
        assert main(["run", "sweep", "medmnist-plus", *data, "--shard", part, "--quiet",
                     "--runs-dir", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--no-per-label"]) == 0
    header, _, *rows = capsys.readouterr().out.strip().splitlines()
    assert "| AUC | ACC |" in header and len(rows) == 3
    for recipe, mode in (("end-to-end", "mode 2"), ("linear-probe", "mode 1"), ("knn", "mode 1")):
        assert any(f"medmnistplus-{recipe}@pneumoniamnist-28" in r and mode in r for r in rows)


def test_medmnist_plus_lays_out_the_protocols_grid_with_its_settings(capsys):
    assert main(["run", "sweep", "medmnist-plus", "data.root=/nowhere", "data.name=breastmnist", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    protocol = [line for line in lines if line.startswith("recipe ")]
    assert len(protocol) == 3 and all(", padded to 224, no augmentation" in line for line in protocol)
    assert "adamw max_lr 0.0001 wd 0.01, cosine, 100 epochs, early stopping 5 on valid_loss, batch 64" in protocol[0]
    assert "k-NN vote of 11 on the frozen body's features" in protocol[2]
    jobs = [dict(w.split("=", 1) for w in line.split()[2:]) | {"recipe": line.split()[1]}
            for line in lines if line.startswith("todo ")]
    assert len(jobs) == 3 * 4 * 3 + 2 * 4 * 2 * 3  # k-NN trains nothing, so no colorizer rows for it
    assert {j["train.seed"] for j in jobs} == {"9930641", "115149041", "252139603"}
    assert {j["data.size"] for j in jobs} == {"28", "64", "128", "224"} and all(j["data.size"] == j["train.image_size"]
                                                                                for j in jobs)
    assert {j["model.colorizer"] for j in jobs if j["recipe"] == "medmnistplus-knn"} == {"none"}
    assert all((j["data.as_rgb"] == "true") == (j["model.colorizer"] == "none") for j in jobs)
