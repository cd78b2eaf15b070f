import pytest

from medcolor.data.labels import canonical, match_labels, parse_labels_map
from medcolor.core.errors import UsageError

NIH = ["Atelectasis", "Cardiomegaly", "Effusion", "Pleural_Thickening", "Any finding"]
CHEXPERT = ["No Finding", "Cardiomegaly", "Atelectasis", "Pleural Effusion", "Pleural Other"]


def test_names_match_up_to_case_spaces_underscores_and_the_known_synonym():
    assert canonical("Pleural_Thickening") == canonical("pleural  thickening") == "pleural thickening"
    with pytest.warns(UserWarning, match="has no Pleural_Thickening, Any finding"):
        matched = match_labels(NIH, CHEXPERT, {}, "chexpert data")
    assert matched == {"Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Pleural Effusion"}


def test_no_finding_is_not_taken_for_any_finding_and_a_map_adds_pairs():
    with pytest.raises(UsageError, match="no label of the run"):
        match_labels(["Any finding"], CHEXPERT, {}, "x")
    assert match_labels(["Any finding"], ["Abnormal"], {"Any finding": "Abnormal"}, "x") == {"Any finding": "Abnormal"}


def test_bad_label_maps_are_named():
    with pytest.raises(UsageError, match="RUN_LABEL=DATA_LABEL"):
        parse_labels_map(["Edema"])
    with pytest.raises(UsageError, match=r"\['Oedema'\] are not labels of the run"):
        match_labels(NIH, CHEXPERT, {"Oedema": "Edema"}, "x")
    with pytest.raises(UsageError, match=r"\['Edema'\] are not labels of x"):
        match_labels(NIH, CHEXPERT, {"Atelectasis": "Edema"}, "x")
