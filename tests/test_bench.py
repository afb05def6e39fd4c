"""The benchmark (tools/bench/): its reference network is the course's network, and a tiny run writes every figure."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_course.__main__ import main as cli
from resnet_course.analysis import count_parameters
from resnet_course.models import create_model
from resnet_course.plots import running_mean
from resnet_course.train import TrainingRun
from tools.bench.degradation_clock import first_step_behind
from tools.bench.reference import reference_cifar_resnet
from tools.bench.throughput import synthetic_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("depth, paper_millions", [(20, 0.27), (56, 0.85)])
def test_reference_has_as_many_parameters_as_ours_and_the_paper(depth, paper_millions):
    ours, reference = create_model(f"resnet{depth}"), reference_cifar_resnet(depth)
    assert count_parameters(reference) == count_parameters(ours)
    assert round(count_parameters(reference) / 1e6, 2) == paper_millions
    assert list(reference.state_dict()) == list(ours.state_dict())


@pytest.mark.parametrize("depth, width", [(20, 16), (56, 4)])
def test_reference_with_our_weights_computes_what_ours_computes(depth, width, one_thread):
    torch.manual_seed(0)
    ours = create_model(f"resnet{depth}", width=width)
    reference = reference_cifar_resnet(depth, width=width)
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(8, 3, 16, 16)
    # Training mode (batch statistics), gradients included ...
    out_ours, out_reference = ours(x), reference(x)
    assert torch.allclose(out_ours, out_reference, atol=1e-5)
    out_ours.square().sum().backward()
    out_reference.square().sum().backward()
    assert torch.allclose(ours.conv1.weight.grad, reference.conv1.weight.grad, rtol=1e-4, atol=1e-6)
    # ... and eval mode, with the running statistics that forward pass updated.
    ours.eval(), reference.eval()
    assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_reference_refuses_a_depth_that_is_not_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        reference_cifar_resnet(21)


def test_first_step_behind_is_where_the_deeper_net_stays_behind():
    shallow = [1.0] * 15
    deep = [0.5] * 5 + [2.0] * 10
    assert first_step_behind(shallow, deep, window=1) == 6
    assert (
        first_step_behind(shallow, deep, window=3) == 7
    )  # the mean of the last 3 crosses one step later
    assert (
        first_step_behind(shallow, deep[:5] + [2.0, 0.5] + [2.0] * 8, window=1) == 8
    )  # must stay behind
    assert first_step_behind(deep, shallow, window=1) is None
    assert running_mean([1, 2, 3, 4], 2).tolist() == [1.0, 1.5, 2.5, 3.5]


def test_bad_parts_and_models_are_refused(capsys):
    assert cli(["bench", "--only", "speed"]) == 2
    assert "unknown part(s) speed" in capsys.readouterr().err
    assert cli(["bench", "--models", "plain20", "--only", "throughput"]) == 2
    assert "CIFAR ResNets" in capsys.readouterr().err


def test_the_tool_runs_as_python_m_tools_bench():
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: python -m tools.bench") and "--only" in done.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_steps_on_a_gpu_never_make_the_host_wait():
    # Between loss reads the host must queue work and move on: any synchronising call
    # (a pageable copy, .item(), a boolean mask) raises under sync debug mode "error".
    data = synthetic_images(128 * 30, 32)
    run = TrainingRun(
        create_model("resnet20", width=8),
        data,
        epochs=1,
        batch_size=128,
        log_every=1000,
        test_every_epoch=False,
        progress=False,
        device="cuda",
    )
    steps = iter(run)
    next(steps)  # set-up and the epoch's shuffle happen once, before the first step
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            next(steps)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _notebook(path, source):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(notebook, path)


@pytest.mark.slow
def test_bench_end_to_end_at_tiny_sizes(tmp_path, one_thread, capsys):
    _notebook(
        tmp_path / "01_ok.ipynb", "import os\nassert os.environ['RESNET_COURSE_PRESET'] == 'cpu'"
    )
    _notebook(tmp_path / "02_fails.ipynb", "raise RuntimeError('broken chapter')")
    report_path = tmp_path / "bench.json"
    code = cli(
        [
            "bench",
            "--models",
            "resnet20",
            "--image-size",
            "8",
            "--width",
            "2",
            "--batch-size",
            "16",
            "--steps",
            "1",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--notebooks",
            str(tmp_path / "*.ipynb"),
            "--train-size",
            "64",
            "--test-size",
            "32",
            "--epochs",
            "2",
            "--window",
            "2",
            "--json",
            str(report_path),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Machine:" in printed and "whole book" in printed and "Degradation clock" in printed
    assert "cell   0" in printed  # each chapter's slowest cells

    report = json.loads(report_path.read_text())
    assert report["parts"] == [
        "machine",
        "memory_format",
        "throughput",
        "chapters",
        "gpu_estimate",
        "degradation",
    ]
    assert [(row["model"], row["width"], row["image_size"]) for row in report["memory_format"]] == [
        ("resnet20", 2, 8)
    ]
    assert all(row["channels_last_speedup"] > 0 for row in report["memory_format"])
    assert report["gpu_estimate"]["kind"] == "estimate" and set(
        report["gpu_estimate"]["chapters"]
    ) >= {"01_degradation"}
    assert {"cpu", "logical_cores", "torch", "torchvision", "device", "load_average"} <= set(
        report["machine"]
    )

    (speed,) = report["throughput"]
    assert speed["model"] == "resnet20" and speed["batch_size"] == 16 and speed["image_size"] == 8
    assert set(speed["images_per_s"]) == {"reference", "course_network", "course_loop", "tutorial"}
    # on one CPU thread even a narrow network trains channels-last (devices.use_channels_last)
    assert speed["ratio_loop_vs_tutorial"] > 0 and speed["channels_last"]
    assert all(
        len(samples) == 2 and min(samples) > 0 for samples in speed["samples_images_per_s"].values()
    )
    assert speed["ratio_network"] > 0 and speed["ratio_loop"] > 0

    chapters = report["chapters"]
    assert [entry["ok"] for entry in chapters["notebooks"]] == [True, False]
    assert "broken chapter" in chapters["notebooks"][1]["error"] and not chapters["all_ok"]
    (cell,) = chapters["notebooks"][0]["slowest_cells"]  # each cell's own time, from nbclient
    assert cell["cell"] == 0 and cell["first_line"] == "import os" and cell["seconds"] >= 0
    assert chapters["total_seconds"] == pytest.approx(
        sum(entry["seconds"] for entry in chapters["notebooks"])
    )

    clock = report["degradation"]
    assert clock["total_steps"] == 2 * (64 // 16)
    assert clock["window"] == 2 and set(clock["final_running_loss"]) == {"plain20", "plain56"}
    if clock["behind_from_step"] is not None:
        assert 0 < clock["seconds_to_behind"] <= clock["total_seconds"]
    assert any("throughput ratio" in line for line in report["goals"])
    assert any("tutorial pipeline" in line for line in report["goals"])
    assert report["chapters_by_preset"]["cpu"] == chapters


def test_compiling_pays_only_from_the_run_length_that_wins_back_its_compile_time():
    from tools.bench.compile_speed import compile_verdict, format_compile

    # 30 s to compile, 0.1 s saved per step: it pays from 300 steps.
    verdict = compile_verdict(30.0, 0.5, 0.4, {"book": 200, "cpu": 1000})
    assert round(verdict["break_even_steps"]) == 300
    assert verdict["compile_pays_at"] == {"book": False, "cpu": True}
    slower = compile_verdict(30.0, 0.4, 0.5, {"book": 200, "cpu": 100_000})
    assert slower["break_even_steps"] is None and slower["compile_pays_at"] == {
        "book": False,
        "cpu": False,
    }
    row = {"model": "resnet20", "width": 8, "image_size": 16, **slower}
    assert "never (not faster per step)" in format_compile(
        [row]
    ) and "cpu (100,000 steps): does not pay" in format_compile([row])


def test_the_memory_format_table_times_both_layouts(one_thread):
    from tools.bench.memory_format import measure_memory_format

    (row,) = measure_memory_format(batch_size=4, steps=1, repeats=2, sizes=(("resnet20", 2, 8),))
    speeds = row["images_per_s"]
    assert set(speeds) == {"contiguous", "channels_last"} and min(speeds.values()) > 0
    assert row["channels_last_speedup"] > 0 and row["device"] == "cpu (1 thread)"


def test_notebooks_to_time_are_paths_or_globs_and_a_miss_is_named(tmp_path):
    from tools.bench.command import notebooks_to_time

    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        (tmp_path / name).write_text("{}")
    chosen = notebooks_to_time(f"{tmp_path}/01_a.ipynb, {tmp_path}/0[23]_*.ipynb")
    assert [p.name for p in chosen] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    with pytest.raises(SystemExit, match="no notebook matches '.*09_missing.ipynb'"):
        notebooks_to_time(f"{tmp_path}/01_a.ipynb,{tmp_path}/09_missing.ipynb")
