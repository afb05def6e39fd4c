"""Reproducing the paper's table: the schedule, a tiny run with provenance, reading it back, and DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resnet_course.__main__ import main as cli
from resnet_course.data import make_spirals
from resnet_course.evidence import format_results, load_results
from resnet_course.models import MLP
from resnet_course.train import TrainingRun, set_seed
from tools.reproduce import RECIPES, StepSchedule, thin_step_losses, training_plan

ROOT = Path(__file__).resolve().parents[1]


def test_paper_schedule_divides_by_ten_at_32k_and_48k():
    plan = training_plan(RECIPES["paper"], "resnet56", steps_per_epoch=390)
    schedule = plan["config"].schedule
    assert plan["config"].steps == 64_000 and plan["config"].batch_size == 128
    assert [schedule(i) for i in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert plan["config"].momentum == 0.9 and plan["config"].weight_decay == 1e-4


def test_resnet110_warms_up_at_001_for_400_iterations_and_only_it():
    schedule = training_plan(RECIPES["paper"], "resnet110", steps_per_epoch=390)["config"].schedule
    assert [schedule(i) for i in (0, 399, 400, 32_000)] == pytest.approx([0.01, 0.01, 0.1, 0.01])
    assert (
        training_plan(RECIPES["paper"], "resnet56", steps_per_epoch=390)["config"].schedule(0)
        == 0.1
    )


def test_a_shortened_recipe_keeps_its_schedule_in_proportion():
    plan = training_plan(RECIPES["paper"], "resnet110", steps_per_epoch=390, iterations=6_400)
    assert (
        plan["record"]["milestones"] == [3_200, 4_800] and plan["record"]["warmup_iterations"] == 40
    )
    fast = training_plan(RECIPES["fast"], "resnet20", steps_per_epoch=390)
    assert fast["record"]["iterations"] == 60 * 390 and fast["config"].schedule == "cosine"
    assert fast["config"].warmup_epochs == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not both"):
        training_plan(RECIPES["paper"], "resnet20", 390, iterations=10, epochs=1)


def test_the_training_loop_follows_a_schedule_function():
    run = TrainingRun(
        MLP(3, 8),
        make_spirals(64),
        epochs=2,
        batch_size=51,
        schedule=StepSchedule(0.1, (2, 3)),
        progress=False,
    )
    rates = [run.optimizer.param_groups[0]["lr"] for _ in run]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert "StepSchedule" in run.history.config["schedule"]


def test_long_histories_keep_bin_means_of_their_step_losses():
    history = {
        "steps": list(range(1, 2501)),
        "step_loss": [float(i) for i in range(1, 2501)],
        "epochs": [1.0],
    }
    thinned = thin_step_losses(history, max_points=1000)
    assert thinned["step_loss_bin"] == 3 and len(thinned["steps"]) == 834
    assert thinned["steps"][:2] == [3, 6] and thinned["step_loss"][:2] == [2.0, 5.0]
    assert (
        thinned["steps"][-1] == 2500 and thinned["step_loss"][-1] == 2500.0
    )  # the last, short bin
    assert thin_step_losses(history, max_points=5000)["step_loss"] == history["step_loss"]


def test_bad_options_are_refused(capsys):
    assert cli(["reproduce", "--models", "resnet21"]) == 2
    assert "unknown model 'resnet21'" in capsys.readouterr().err
    assert cli(["reproduce", "--iterations", "5", "--epochs", "1"]) == 2
    with pytest.raises(FileNotFoundError, match="no results folder"):
        load_results("/nonexistent/results")


def test_the_tool_runs_as_python_m_tools_reproduce():
    done = subprocess.run(
        [sys.executable, "-m", "tools.reproduce", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: python -m tools.reproduce") and "--recipe" in done.stdout


def test_outside_a_clone_the_delegating_commands_say_where_the_tools_are(tmp_path):
    # From another folder `tools` is not importable (the wheel does not ship it): one sentence, exit 2.
    script = "import sys; from resnet_course.__main__ import main; sys.exit(main(sys.argv[1:]))"
    for command in ("bench", "reproduce"):
        done = subprocess.run(
            [sys.executable, "-c", script, command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": ""},
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert (
            f"python -m tools.{command}," in done.stderr
            and "clone" in done.stderr
            and "Traceback" not in done.stderr
        )


def test_tiny_run_writes_json_and_png_with_provenance_and_reads_back(
    tmp_path, cifar_available, one_thread
):
    out = tmp_path / "results"
    code = cli(
        [
            "reproduce",
            "--models",
            "resnet20",
            "--iterations",
            "20",
            "--width",
            "4",
            "--image-size",
            "16",
            "--train-size",
            "512",
            "--test-size",
            "128",
            "--validation-size",
            "64",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    (json_path,) = out.glob("*.json")
    (png_path,) = out.glob("*.png")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stem == json_path.stem

    record = json.loads(json_path.read_text())
    assert record["model"] == "resnet20" and record["recipe"]["name"] == "paper"
    assert record["history"]["steps"] == list(range(1, 21)) and record["plan"]["iterations"] == 20
    assert record["plan"]["milestones"] == [10, 15]
    assert not record["full_scale"] and any(
        "20 iterations" in note for note in record["scale_notes"]
    )
    assert any("width 4" in note for note in record["scale_notes"])
    assert record["data"] == {
        "name": record["data"]["name"],
        "source": record["data"]["source"],
        "sha256": record["data"]["sha256"],
        "image_size": 16,
        "train_images": 448,
        "validation_images": 64,
        "test_images": 128,
    }
    # The file by its name and its content's hash, never by a path on the machine that made it.
    assert (
        "/" not in record["data"]["source"]
        and os.environ["RESNET_COURSE_DATA"] not in json_path.read_text()
    )
    assert len(record["data"]["sha256"]) == 64
    assert 0 <= record["final_test_error"] <= 100 and 0 <= record["final_validation_error"] <= 100
    assert record["paper_test_error"] == 8.75 and record["processes"] == 1
    assert record["versions"]["torch"] == torch.__version__ and "torchvision" in record["versions"]
    assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40
    assert record["device"].startswith("cpu") and record["wall_time_s"] > 0

    # A foreign JSON is skipped; the record comes back as a row with its provenance.
    (out / "bench.json").write_text(json.dumps({"throughput": []}))
    (row,) = load_results(out)
    assert (row.model, row.recipe, row.iterations, row.full_scale) == (
        "resnet20",
        "paper",
        20,
        False,
    )
    assert row.test_error == record["final_test_error"] and row.path == str(json_path)
    assert "reduced" in row.provenance and record["device"] in row.provenance
    assert "| resnet20 | paper |" in format_results([row])

    broken = dict(record)
    del broken["plan"]
    (out / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="without the field 'plan'"):
        load_results(out)


# --- data parallel -----------------------------------------------------------------------------


def _train_spirals(distributed: bool) -> TrainingRun:
    set_seed(0)
    run = TrainingRun(
        MLP(4, 16),
        make_spirals(96, seed=1),
        epochs=2,
        batch_size=32,
        lr=0.1,
        schedule="constant",
        device="cpu",
        progress=False,
        distributed=distributed,
    )
    for _ in run:
        pass
    return run


def _ddp_worker(rank: int, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=2)
    try:
        run = _train_spirals(distributed=True)
        history = run.history
        torch.save(
            {
                "state": run.model.state_dict(),
                "train_loss": history.train_loss,
                "step_loss": history.step_loss,
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_each_on_half_of_every_batch_train_like_one(tmp_path, one_thread):
    # An MLP without BatchNorm: the mean of the two half-batch gradients is the full batch's.
    mp.spawn(
        _ddp_worker, args=(f"file://{tmp_path}/rendezvous", str(tmp_path)), nprocs=2, join=True
    )
    single = _train_spirals(distributed=False)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for saved in ranks:
        for name, value in single.model.state_dict().items():
            assert torch.allclose(saved["state"][name], value, atol=1e-5), name
        assert saved["train_loss"] == pytest.approx(single.history.train_loss, rel=1e-4)
    # Each process saw its own half: different losses, whose mean is the whole batch's loss.
    halves = torch.tensor([saved["step_loss"] for saved in ranks])
    assert not torch.allclose(halves[0], halves[1])
    assert halves.mean(0).tolist() == pytest.approx(single.history.step_loss, rel=1e-4)


@pytest.mark.slow
def test_torchrun_with_two_processes_writes_one_record(tmp_path, cifar_available):
    out = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tools.reproduce",
        "--models",
        "plain20",
        "--iterations",
        "4",
        "--width",
        "2",
        "--image-size",
        "8",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (json_path,) = out.glob("*.json")
    record = json.loads(json_path.read_text())
    assert record["processes"] == 2 and record["history"]["steps"] == [1, 2, 3, 4]
    assert record["history"]["config"]["processes"] == 2 and record["data"]["train_images"] == 256
