import numpy as np
import pandas as pd
import pytest

from medcolor.data import load_data_config, summarize
from medcolor.core.errors import UsageError

from fixtures import chexpert

nan = np.nan
# 8 training rows, hand-written; expected positives counted by hand below.
COLUMNS = {
    "Atelectasis":      [1, -1, 0, nan, -1, 1, nan, 0],
    "Cardiomegaly":     [-1, -1, -1, 1, 0, nan, nan, 0],
    "Consolidation":    [0, 0, 1, 1, -1, nan, 0, 0],
    "Edema":            [-1, 0, 0, 0, 0, 0, 1, -1],
    "Pleural Effusion": [1, 1, 1, -1, nan, nan, 0, -1],
}
ROWS = [{k: v[i] for k, v in COLUMNS.items()} for i in range(8)]
EXPECTED = {
    "u-ones":  {"Atelectasis": 4, "Cardiomegaly": 4, "Consolidation": 3, "Edema": 3, "Pleural Effusion": 5},
    "u-zeros": {"Atelectasis": 2, "Cardiomegaly": 1, "Consolidation": 2, "Edema": 1, "Pleural Effusion": 3},
    "u-ignore": {"Atelectasis": 2, "Cardiomegaly": 1, "Consolidation": 2, "Edema": 1, "Pleural Effusion": 3},
    "thesis":  {"Atelectasis": 4, "Cardiomegaly": 1, "Consolidation": 2, "Edema": 3, "Pleural Effusion": 5},
}


@pytest.fixture
def root(tmp_path):
    return chexpert(tmp_path, n_train=8, values=ROWS)


@pytest.mark.parametrize("policy", EXPECTED)
def test_policies_give_hand_counted_positives(root, policy):
    s = summarize(load_data_config("chexpert", [f"policy={policy}"], root=str(root)))
    assert s["n_images"] == 8
    assert s["positives"] == EXPECTED[policy]


def test_u_ignore_masks_uncertain_values(root):
    s = summarize(load_data_config("chexpert", ["policy=u-ignore"], root=str(root)))
    assert s["uncertain_masked"] == {"Atelectasis": 2, "Cardiomegaly": 3, "Consolidation": 1, "Edema": 2,
                                     "Pleural Effusion": 2}


def test_per_label_policy_map(root):
    s = summarize(load_data_config("chexpert", ["policy_map={Cardiomegaly: u-ones}"], root=str(root)))
    assert s["positives"] == {**EXPECTED["thesis"], "Cardiomegaly": 4}


def test_frontal_only_filter(root):
    s = summarize(load_data_config("chexpert", ["frontal_only=true"], root=str(root)))
    frontal = pd.read_csv(root / "train.csv")["Frontal/Lateral"].eq("Frontal").sum()
    assert s["n_images"] == frontal == 5


def test_subset_is_exactly_pandas_sample_of_the_training_table(tmp_path):
    from medcolor.data import read_table

    root = chexpert(tmp_path, n_train=24)
    cfg = load_data_config("chexpert", ["subset.fraction=0.5", "subset.seed=8"], root=str(root))
    got = read_table(cfg, splits=("train",)).df["path"].str.split("CheXpert-v1.0-small/", n=1).str[1]
    expected = pd.read_csv(root / "train.csv").sample(frac=0.5, random_state=8)["Path"].str.split("/", n=1).str[1]
    assert len(got) == 12 and list(got) == list(expected)


def test_values_outside_the_code_set_are_rejected(tmp_path):
    root = chexpert(tmp_path, n_train=4, values=[{"Edema": 2.0}, {}, {}, {}])
    with pytest.raises(UsageError, match=r"column 'Edema' has 1 values outside 1 / 0 / -1 / blank \(first: 2.0"):
        summarize(load_data_config("chexpert", root=str(root)))


# The real CheXpert-v1.0-small train.csv holds, per label, these counts of 1 and -1 (223,414 rows). A table with
# the same counts must give the thesis's Table 4.2 positives under the `thesis` policy (U-Ones for Atelectasis,
# Edema and Pleural Effusion, U-Zeros for Cardiomegaly and Consolidation; thesis Table 4.1).
REAL_COUNTS = {"Atelectasis": (33_376, 33_739), "Cardiomegaly": (27_000, 8_087), "Consolidation": (14_783, 27_742),
               "Edema": (52_246, 12_984), "Pleural Effusion": (86_187, 11_628)}
TABLE_4_2 = {"Atelectasis": 67_115, "Cardiomegaly": 27_000, "Consolidation": 14_783, "Edema": 65_230,
             "Pleural Effusion": 97_815}


def test_thesis_policy_gives_table_4_2_on_a_table_with_the_real_counts(tmp_path, capsys):
    import json
    from medcolor.cli import main

    n = 223_414
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"Path": [f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.jpg" for i in range(n)]})
    for label, (ones, uncertain) in REAL_COUNTS.items():
        values = np.full(n, np.nan)
        values[:ones], values[ones:ones + uncertain], values[ones + uncertain:ones + uncertain + 1000] = 1, -1, 0
        df[label] = rng.permutation(values)
    csv = tmp_path / "train.csv"
    df.to_csv(csv, index=False)
    s = summarize(load_data_config("chexpert", csv=str(csv)))
    assert s["n_images"] == n and s["positives"] == TABLE_4_2
    assert main(["data", "summary", "chexpert", "--csv", str(csv), "subset.fraction=0.1", "subset.seed=8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 22_341  # the thesis's 10 % subset size
