"""_resources: the files shipped with the package (recipes, sweeps, data specs, samples), the one lookup of "a
shipped name or a user's path", `package:` paths and the version string."""
import re
from pathlib import Path

import pytest

import medcolor
from medcolor.core._resources import medcolor_version, resolve_named, resolve_package_path, shipped_dir, shipped_yaml
from medcolor.core.errors import UsageError


def test_the_version_is_one_plain_string():
    version = medcolor_version()
    assert isinstance(version, str) and re.fullmatch(r"\d+(\.\d+)*\S*|0\+unknown", version), version


def test_shipped_folders_are_real_directories():
    assert shipped_dir("samples") == Path(medcolor.__file__).parent / "samples"
    assert (shipped_dir("samples") / "nih-cxr14-sample" / "Data_Entry_2017.csv").is_file()
    assert (shipped_dir("recipes") / "demo.yaml").is_file()
    assert (shipped_dir("data_specs") / "nih-sample.yaml").is_file()
    with pytest.raises(KeyError):
        shipped_dir("no-such-folder")


def test_shipped_yaml_maps_names_to_files_of_one_folder():
    recipes, sweeps, specs = shipped_yaml("recipes"), shipped_yaml("recipes/sweeps"), shipped_yaml("data_specs")
    assert recipes["demo"] == shipped_dir("recipes") / "demo.yaml"
    assert all(p.suffix == ".yaml" and p.is_file() for d in (recipes, sweeps, specs) for p in d.values())
    assert "demo" in sweeps and "demo" in recipes  # the same name in two folders is two files
    assert {"nih-sample", "chexpert", "chestxray14", "mura", "folder", "csv", "ixi", "medmnist"} <= set(specs)
    assert "sweeps" not in recipes and "demo" not in specs  # one folder each, not its subfolders


def test_a_shipped_name_resolves_to_its_file():
    assert resolve_named("recipes", "demo", "recipe") == shipped_dir("recipes") / "demo.yaml"
    assert resolve_named("data_specs", "nih-sample", "data spec") == shipped_dir("data_specs") / "nih-sample.yaml"


def test_a_users_yaml_path_is_taken_as_it_is(tmp_path):
    mine = tmp_path / "mine.yml"
    mine.write_text("name: mine\n")
    assert resolve_named("recipes", str(mine), "recipe") == mine
    other = tmp_path / "demo"  # an existing file named like a shipped recipe is the user's file
    other.write_text("name: other\n")
    assert resolve_named("recipes", str(other), "recipe") == other


def test_a_missing_or_folder_path_is_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"^recipe file .*nope\.yaml does not exist$"):
        resolve_named("recipes", str(tmp_path / "nope.yaml"), "recipe")
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(UsageError, match=r"recipe file .*d\.yaml is a folder; give a YAML file"):
        resolve_named("recipes", str(tmp_path / "d.yaml"), "recipe")
    with pytest.raises(UsageError, match="is a folder"):
        resolve_named("recipes", str(tmp_path), "recipe")  # an existing folder without a suffix too


def test_an_unknown_name_suggests_a_close_one_and_lists_the_known_ones():
    with pytest.raises(UsageError) as e:
        resolve_named("recipes", "dmeo", "recipe")
    assert str(e.value).startswith("unknown recipe 'dmeo' (did you mean demo")
    assert "known: " in str(e.value) and "demo-mode2" in str(e.value)
    with pytest.raises(UsageError) as e:
        resolve_named("data_specs", "nih-sampel", "data spec", hint="see `medcolor data specs`")
    assert str(e.value) == "unknown data spec 'nih-sampel' (did you mean nih-sample?); see `medcolor data specs`"


def test_a_plain_value_is_a_user_path_with_the_home_folder_expanded():
    assert resolve_package_path("/data/chexpert") == Path("/data/chexpert")
    assert resolve_package_path("rel/dir") == Path("rel/dir")
    assert resolve_package_path("~/x") == Path.home() / "x"


def test_package_paths_point_inside_installed_packages():
    samples = Path(medcolor.__file__).parent / "samples" / "nih-cxr14-sample"
    assert resolve_package_path("package:medcolor/samples/nih-cxr14-sample") == samples
    assert resolve_package_path("package:samples/nih-cxr14-sample") == samples  # run folders of earlier versions
    import yaml

    assert resolve_package_path("package:yaml") == Path(yaml.__file__).parent
    assert resolve_package_path("package:yaml/sub/file.txt") == Path(yaml.__file__).parent / "sub" / "file.txt"


def test_a_package_that_is_not_installed_says_how_to_install_it():
    with pytest.raises(UsageError, match=r"^package:no_such_pkg/x: no installed Python package 'no_such_pkg'; "
                                         r"install it \(pip install no-such-pkg\) or give a path$"):
        resolve_package_path("package:no_such_pkg/x")
    with pytest.raises(UsageError, match="no installed Python package 'argparse'"):
        resolve_package_path("package:argparse")  # a module, not a package: nothing to hold files
