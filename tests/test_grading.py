"""The grading package without running notebooks: checks, reports, the generator, the grader's restore step, the CLI's errors.

Trusted implementations stand in for a student's work: the course's own blocks
(tested against torchvision in test_blocks.py) must pass the checks, and
wrong ones must fail them, so no check is vacuous.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from resnet_course import blocks
from resnet_course.grading import build_exercises, checks
from resnet_course.grading.exercises import CHECK_TAG, EXERCISES
from resnet_course.grading.grader import (
    GradingError,
    identify_exercise,
    read_notebook,
    restore_check_cells,
)
from resnet_course.grading.report import Check, parse_report

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ROOT / "exercises"


# --- reports ---------------------------------------------------------------------------------


def test_report_text_round_trips_through_the_parser():
    check = Check("demo")
    check.item("passes", hint="never shown")(lambda record, seed: None)

    @check.item("fails", hint="look here")
    def _fails(record, seed):
        raise checks.CheckFailed("got 3, expected 4.")

    report = check.run()
    assert report.text().splitlines() == [
        "Check demo: 1/2 passed",
        "  [pass] passes",
        "  [FAIL] fails",
        "         got 3, expected 4.",
        "         hint: look here",
    ]
    parsed = parse_report("some output before\n" + report.text())
    assert (parsed.check, parsed.passed, parsed.total) == ("demo", 1, 2)
    assert parsed.items[1].detail == "got 3, expected 4." and parsed.items[1].hint == "look here"


def test_a_report_whose_header_disagrees_with_its_lines_is_not_accepted():
    forged = "Check demo: 2/2 passed\n  [pass] one"
    assert parse_report(forged) is None
    assert parse_report("all passed") is None


def test_items_are_isolated_seeded_and_silent():
    check = Check("isolation")
    draws = []

    @check.item("draws and prints", hint="")
    def _draw(record, seed):
        print("student output that must not reach the report")
        draws.append(torch.rand(1).item())
        raise NotImplementedError

    check.item("still runs", hint="")(lambda record, seed: None)
    torch.manual_seed(123)
    expected_next = torch.rand(1).item()
    torch.manual_seed(123)
    first, second = check.run(), check.run()
    assert torch.rand(1).item() == expected_next, (
        "a check must leave the caller's random state alone"
    )
    assert draws[0] == draws[1], "every item starts from the same seed"
    assert first.text() == second.text()
    assert "student output" not in first.text()
    assert [item.passed for item in first.items] == [False, True]
    assert "not implemented yet" in first.items[0].detail


# --- the checks, against trusted and broken implementations -----------------------------------


def projection_shortcut(in_channels, out_channels, stride):
    return blocks.make_shortcut("B", in_channels, out_channels, stride)


def grouped_bottleneck(in_channels, out_channels, stride=1, cardinality=32, group_width=4):
    """The course's ResNeXt bottleneck in exercise 6's signature: its 3x3 has cardinality * group_width channels."""
    planes = out_channels // 4
    return blocks.Bottleneck(
        in_channels, planes, stride, groups=cardinality, width_per_group=group_width * 64 // planes
    )


def ungrouped_bottleneck(in_channels, out_channels, stride=1, cardinality=32, group_width=4):
    """As wide, but one group: the same shapes, not the same block."""
    planes = out_channels // 4
    return blocks.Bottleneck(
        in_channels, planes, stride, width_per_group=cardinality * group_width * 64 // planes
    )


def course_cifar_net(depth, *, residual, width=8, num_classes=10):
    from resnet_course import cifar_resnet

    return cifar_resnet(
        depth, block="basic" if residual else "plain", width=width, num_classes=num_classes
    )


def wide_cifar_net(depth, *, residual, width=8, num_classes=10):
    return course_cifar_net(depth, residual=residual, width=2 * width, num_classes=num_classes)


TRUSTED_AND_BROKEN = {
    "basic_block": (dict(BasicBlock=blocks.BasicBlock), dict(BasicBlock=blocks.PlainBlock)),
    "preact_block": (dict(PreActBlock=blocks.PreActBlock), dict(PreActBlock=blocks.BasicBlock)),
    "bottleneck": (dict(Bottleneck=blocks.Bottleneck), dict(Bottleneck=blocks.BasicBlock)),
    "shortcuts": (
        dict(ZeroPadShortcut=blocks.ZeroPadShortcut, ProjectionShortcut=projection_shortcut),
        dict(ZeroPadShortcut=projection_shortcut, ProjectionShortcut=blocks.ZeroPadShortcut),
    ),
    "option_b_cost": (
        dict(option_b_extra=(16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)),
        dict(option_b_extra=None),
    ),
    "resnext_block": (
        dict(ResNeXtBlock=grouped_bottleneck),
        dict(ResNeXtBlock=ungrouped_bottleneck),
    ),
    "cifar_nets": (dict(make_cifar_net=course_cifar_net), dict(make_cifar_net=wide_cifar_net)),
    **{
        f"fixed_block_{n}": (dict(Block=blocks.BasicBlock), dict(Block=blocks.PreActBlock))
        for n in range(1, 5)
    },
}


@pytest.mark.parametrize("name", sorted(TRUSTED_AND_BROKEN))
def test_a_trusted_implementation_passes_and_a_broken_one_fails(name):
    trusted, broken = TRUSTED_AND_BROKEN[name]
    check = checks.ALL_CHECKS[name]
    # The course's own objects stand in for the student's here, so the own-code gate is off...
    passing = check.run(own_code_required=False, seed=20261202, **trusted)
    assert passing.all_passed, passing.text()
    assert passing.text() == check.all_passed_text()
    failing = check.run(own_code_required=False, **broken)
    assert failing.passed < failing.total, failing.text()
    for item in failing.items:
        assert item.passed or item.hint, "every failure comes with a hint"
    if check.own:  # ...and with it on, the course's own block is not the student's work
        borrowed = check.run(**trusted)
        assert (
            borrowed.passed == 0 and "not code written in this notebook" in borrowed.items[0].detail
        )


def test_input_gradient_check_accepts_the_right_split_and_rejects_a_wrong_one():
    def right(block, x, grad_output):
        x = x.detach().requires_grad_(True)
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        upstream = grad_output * (torch.relu(branch + x) > 0)
        return upstream, torch.autograd.grad(branch, x, upstream)[0]

    def autograd_only(block, x, grad_output):  # the right total, but no identity term
        x = x.detach().requires_grad_(True)
        return torch.zeros_like(x), torch.autograd.grad(block(x), x, grad_output)[0]

    assert checks.input_gradient.run(own_code_required=False, input_gradient=right).all_passed
    wrong = checks.input_gradient.run(own_code_required=False, input_gradient=autograd_only)
    assert [item.passed for item in wrong.items] == [True, False]


def finished_run(losses, **changes):
    """A History as fit returns it after training with exercise 2's set-up, ending at ``losses``
    (a final loss after epochs at 2.3, or every epoch's loss)."""
    from resnet_course import History, cifar_resnet, count_parameters

    setup = checks.PLAIN_VS_RESIDUAL
    epochs = setup.training.epochs
    config = {
        **{name: getattr(setup.training, name) for name in setup.NAMED_FIELDS},
        "parameters": count_parameters(cifar_resnet(setup.depth, width=setup.width)),
        **changes,
    }
    curve = list(losses) if isinstance(losses, list) else [2.3] * (epochs - 1) + [losses]
    return History(train_loss=curve, epochs=list(range(1, epochs + 1)), config=config)


def test_plain_vs_residual_check_trains_the_networks_itself():
    """Every verdict rests on the checker's own run: settings, the winner and the match."""
    check = checks.plain_vs_residual

    def run(histories):
        return check.run(
            own_code_required=False, histories=histories, make_cifar_net=course_cifar_net
        )

    # Losses no run of this set-up gives: written by hand, not trained. The settings they
    # claim are SETUP's, but the checker's run with those settings disagrees at every epoch.
    made_up = run({"residual": finished_run(0.8), "plain": finished_run(1.2)})
    assert [item.passed for item in made_up.items] == [False, True, False], made_up.text()
    assert "the checker's run with SETUP's settings" in made_up.items[0].detail
    assert "the checker's run of the same network" in made_up.items[2].detail
    # The same networks' real runs, as the checker made them, are accepted.
    from resnet_course.grading.checks.plain_vs_residual import _checker_curves

    record = check.probe(0, histories={}, make_cifar_net=course_cifar_net)
    curves = _checker_curves(record)
    for curve in curves.values():  # trained: below ln 10 = 2.303 at the end, and falling
        assert 0.5 < curve[-1] < min(curve[0], 2.31), curves
    honest = run({kind: finished_run(curve) for kind, curve in curves.items()})
    assert honest.all_passed, honest.text()
    other_lr = run(
        {"residual": finished_run(curves["residual"], lr=0.05), "plain": finished_run(2.1)}
    )
    assert not other_lr.items[0].passed and "lr=0.05" in other_lr.items[0].detail
    assert run({}).passed == 1  # only the checker's own run, which needs no history
    no_networks = check.run(own_code_required=False, histories={})
    assert no_networks.passed == 0


def test_fixed_block_checks_catch_each_bug_of_the_bug_hunt():
    namespace = {"torch": torch, "nn": nn, "__name__": "__main__"}
    student = nbformat.read(EXERCISE_DIR / "07_bug_hunt.ipynb", as_version=4)
    for cell in student.cells:
        if cell.cell_type == "code" and cell.source.startswith("class Block"):
            exec(cell.source, namespace)  # the broken blocks, as shipped
    for number in range(1, 5):
        report = checks.check_fixed_block(namespace[f"Block{number}"], number)
        assert not report.all_passed, f"Block{number} as shipped should fail its check"
    with pytest.raises(ValueError, match="1, 2, 3 or 4"):
        checks.check_fixed_block(blocks.BasicBlock, 5)


def test_split_transform_merge_equals_a_grouped_bottleneck():
    block = checks.randomise_batch_norm(
        grouped_bottleneck(64, 64, cardinality=8, group_width=4)
    ).eval()
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        paths = torch.relu(checks.split_transform_merge(block, x, 8) + x)
        assert torch.allclose(block(x), paths, atol=1e-5)


# --- the generator -----------------------------------------------------------------------------


def test_student_code_replaces_regions_with_stubs():
    source = "\n".join(
        [
            "def f(x):",
            "    # BEGIN SOLUTION",
            "    return x + 1",
            "    # END SOLUTION",
            "",
            "# BEGIN SOLUTION",
            "y = f(1)",
            "# END SOLUTION",
            "# STUB: y = None  # compute it",
        ]
    )
    assert build_exercises.student_code(source).splitlines() == [
        "def f(x):",
        "    # Your code here.",
        "    raise NotImplementedError",
        "",
        "y = None  # compute it",
    ]
    assert build_exercises.solution_code(source).splitlines() == [
        "def f(x):",
        "    return x + 1",
        "",
        "y = f(1)",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "# BEGIN SOLUTION\nx = 1",
        "x = 1\n# END SOLUTION",
        "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION",
    ],
)
def test_malformed_regions_are_refused(source):
    with pytest.raises(build_exercises.SolutionError):
        build_exercises.student_code(source)


def test_shipped_notebooks_are_in_sync_with_the_solutions(tmp_path):
    """Regenerating from the solutions gives the shipped files, byte for byte."""
    files = build_exercises.build(EXERCISE_DIR / "solutions", tmp_path)
    assert len(files) == 3 * len(EXERCISES)
    for path, text in files.items():
        shipped = EXERCISE_DIR / path.relative_to(tmp_path)
        assert shipped.exists(), (
            f"{shipped} is missing; run python -m resnet_course.grading.build_exercises"
        )
        assert shipped.read_text() == text, (
            f"{shipped} is out of date; run python -m resnet_course.grading.build_exercises"
        )
    # and the grader's list of the lines the notebooks ship with
    assert build_exercises.SHIPPED_MODULE.read_text() == build_exercises.shipped_text(
        EXERCISE_DIR / "solutions"
    ), (
        "resnet_course/grading/shipped.py is out of date; run python -m resnet_course.grading.build_exercises"
    )


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_shipped_notebooks_follow_the_grading_protocol(name):
    for path, is_solution in (
        (EXERCISE_DIR / f"{name}.ipynb", False),
        (EXERCISE_DIR / "solutions" / f"{name}.ipynb", True),
    ):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata["resnet_course"]["exercise"] == name
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert "colab-setup" in code_cells[0].metadata.get("tags", [])
        for check in EXERCISES[name].checks:
            (cell,) = [c for c in code_cells if c.id == check.id]
            assert cell.source == check.source and CHECK_TAG in cell.metadata["tags"]
            assert cell.execution_count is not None, "nbval compares only cells that have been run"
            assert [o["data"]["text/plain"] for o in cell.outputs] == [check.expected_output]
        others = [
            cell for cell in code_cells if cell.id not in {c.id for c in EXERCISES[name].checks}
        ]
        assert all(not cell.outputs and cell.execution_count is None for cell in others), (
            "only check cells store outputs"
        )
        regions = [cell for cell in others if "BEGIN SOLUTION" in cell.source]
        assert bool(regions) == is_solution, (
            "solutions mark the student's part; student notebooks do not show it"
        )


# --- the grader's restore step and its errors --------------------------------------------------


def test_a_tampered_or_deleted_check_cell_is_put_back_or_reported(tmp_path):
    exercise = EXERCISES["05_preactivation"]
    notebook = nbformat.read(EXERCISE_DIR / "05_preactivation.ipynb", as_version=4)
    (index,) = [i for i, c in enumerate(notebook.cells) if c.id == "check-preact-block"]
    notebook.cells[index].source = 'print("all passed")'
    notebook.cells[index].outputs = []
    positions = restore_check_cells(notebook, exercise)
    assert notebook.cells[index].source == exercise.checks[0].source
    assert (
        notebook.cells[index].outputs[0]["data"]["text/plain"] == exercise.checks[0].expected_output
    )
    assert set(positions) == {"check-preact-block"}

    del notebook.cells[index]
    assert restore_check_cells(notebook, exercise) == {}


def test_a_check_cell_without_id_or_metadata_is_found_by_its_call():
    exercise = EXERCISES["01_basic_block"]
    notebook = nbformat.read(EXERCISE_DIR / "01_basic_block.ipynb", as_version=4)
    for cell in notebook.cells:  # as a notebook saved by Colab might be
        cell.pop("id", None)
        cell.metadata = {}
    notebook.nbformat_minor = 4
    positions = restore_check_cells(notebook, exercise)
    assert set(positions) == {"check-basic-block", "check-input-gradient"}
    nbformat.validate(notebook)


def test_the_exercise_is_found_from_metadata_or_file_name(tmp_path):
    notebook = nbformat.read(EXERCISE_DIR / "03_bottleneck.ipynb", as_version=4)
    assert identify_exercise(notebook, tmp_path / "anything.ipynb").name == "03_bottleneck"
    notebook.metadata = {}
    assert identify_exercise(notebook, tmp_path / "03_bottleneck (1).ipynb").name == "03_bottleneck"
    empty = nbformat.v4.new_notebook()
    with pytest.raises(GradingError, match="not one of the course's exercises"):
        identify_exercise(empty, tmp_path / "mine.ipynb")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.ipynb", "does not exist"),
        (
            lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt",
            "is not a Jupyter notebook",
        ),
        (
            lambda d: (d / "broken.ipynb").write_text("{not json") and d / "broken.ipynb",
            "could not be read as a notebook",
        ),
    ],
)
def test_unreadable_notebooks_get_one_sentence(tmp_path, make, message):
    with pytest.raises(GradingError, match=message):
        read_notebook(make(tmp_path))


def test_grade_on_a_missing_file_or_a_non_notebook_prints_one_sentence(tmp_path):
    (tmp_path / "notes.txt").write_text("not a notebook")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnet_course",
            "grade",
            str(tmp_path / "missing.ipynb"),
            str(tmp_path / "notes.txt"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{tmp_path / 'missing.ipynb'} does not exist." in result.stdout
    assert f"{tmp_path / 'notes.txt'} is not a Jupyter notebook (an .ipynb file)." in result.stdout


def test_an_item_that_needs_data_the_grader_lacks_says_so():
    from resnet_course.data import DataUnavailableError
    from resnet_course.grading.report import Check, Item

    def needs_cifar(record, seed):
        raise DataUnavailableError("CIFAR-10 is not in /nowhere and there is no network.")

    result = Check._run_item(Item("retrains your networks", needs_cifar, "hint"), {}, 0)
    assert not result.passed
    assert result.detail == (
        "this item needs CIFAR-10 on the grading machine, which could not load it: "
        "CIFAR-10 is not in /nowhere and there is no network."
    )
