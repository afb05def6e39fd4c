"""The package's layout: modules short enough to read, and a run cache that hashes what decides a run."""

from pathlib import Path

import resnet_course
from resnet_course import runs


def test_no_module_of_the_package_is_over_600_lines():
    # train.py held the recipe, the devices, the presets and the loop in 827 lines.
    package = Path(resnet_course.__file__).parent
    lengths = {
        str(path.relative_to(package)): len(path.read_text().splitlines())
        for path in package.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > 600} == {}


def test_the_run_caches_code_hash_covers_every_module_that_decides_a_run():
    for name in runs.CODE_MODULES:
        assert (Path(runs.__file__).parent / name).is_file(), name
    assert {"recipe.py", "devices.py"} <= set(runs.CODE_MODULES)
