"""Runs side by side: the same numbers as in the notebook's process, a dead worker named, nothing left running."""

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from resnet_course import runs
from resnet_course.data import make_spirals
from resnet_course.workers import Job, WorkerFailed, run_side_by_side

ROOT = Path(__file__).resolve().parents[1]
SPIRALS = dict(batch_size=32, lr=0.05, schedule="constant")
MLP = {"depth": 4, "width": 16}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_RUN_CACHE", raising=False)
    return tmp_path / "runs"


def worker_pids(parent: int | None = None) -> list[int]:
    """The course's worker processes whose parent is ``parent`` (default: this process), oldest first."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and "resnet_course.workers" in command and fields[0] != "Z":
            found.append((int(fields[19]), int(entry.name)))  # (start time, pid)
    return [pid for _, pid in sorted(found)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def test_runs_side_by_side_equal_the_same_runs_made_here(cache):
    jobs = [runs.Job("mlp", seed=0, label="a"), runs.Job("mlp", seed=1, label="b")]
    data = make_spirals(200)
    side = runs.train_or_load_many(
        jobs, data, steps=40, model_options=MLP, workers=2, progress=False, **SPIRALS
    )
    assert [h.config["cached"] for _, h in side] == [False, False]
    assert all(h.device == "cpu (1 thread)" for _, h in side)
    for job, (model, history) in zip(jobs, side):
        here_model, here = runs.train_or_load(
            "mlp",
            data,
            steps=40,
            model_options=MLP,
            seed=job.seed,
            cache=False,
            **SPIRALS,
            progress=False,
        )
        assert here.step_loss == history.step_loss and here.train_acc == history.train_acc
        for (name, a), (_, b) in zip(model.state_dict().items(), here_model.state_dict().items()):
            assert a.equal(b), name
    # Each worker kept its run: a second call reads both back.
    again = runs.train_or_load_many(
        jobs, data, steps=40, model_options=MLP, workers=2, progress=False, **SPIRALS
    )
    assert [h.config["cached"] for _, h in again] == [True, True]
    assert [h.label for _, h in again] == ["a", "b"]


def test_with_the_cache_off_side_by_side_runs_still_come_back(cache, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_RUN_CACHE", "off")
    out = runs.train_or_load_many(
        ["mlp", "mlp"],
        make_spirals(100),
        steps=10,
        model_options=MLP,
        seed=0,
        workers=2,
        progress=False,
        **SPIRALS,
    )
    assert out[0][1].step_loss == out[1][1].step_loss and len(out[0][1].step_loss) == 10
    assert not cache.exists()


def test_a_run_made_on_two_threads_is_not_read_back_as_a_one_thread_run(cache, cifar_available):
    options = dict(steps=2, batch_size=64, model_options={"width": 4}, seed=0, progress=False)
    _, two = runs.train_or_load("resnet20", cifar_available, threads=2, **options)
    _, one = runs.train_or_load("resnet20", cifar_available, **options)
    assert two.device == "cpu (2 threads)" and one.device == "cpu (1 thread)"
    assert one.config["cached"] is False and one.config["run_key"] != two.config["run_key"]
    _, again = runs.train_or_load("resnet20", cifar_available, threads=2, **options)
    assert again.config["cached"] is True and again.config["run_key"] == two.config["run_key"]
    import json

    fields = json.loads((cache / f"{two.config['run_key']}.json").read_text())["fields"]
    assert fields["threads"] == 2 and fields["channels_last"] is False
    fields = json.loads((cache / f"{one.config['run_key']}.json").read_text())["fields"]
    assert fields["threads"] == 1 and fields["channels_last"] is True


@needs_proc
def test_a_killed_worker_is_named_and_the_others_are_kept(cache):
    jobs = [
        runs.Job("mlp", seed=0, label="long run", recipe={"steps": 200_000}),
        runs.Job("mlp", seed=1, label="short run", recipe={"steps": 50}),
    ]
    data = make_spirals(200)
    outcome = {}

    def train():
        try:
            runs.train_or_load_many(
                jobs, data, model_options=MLP, workers=2, progress=False, **SPIRALS
            )
        except BaseException as error:  # noqa: BLE001 - the test reads it
            outcome["error"] = error

    caller = threading.Thread(target=train)
    caller.start()
    # The long run is killed once the short one has kept its entry.
    wait_for(lambda: len(list(cache.glob("*.json"))) == 1, timeout=120, what="the short run")
    wait_for(lambda: len(worker_pids()) == 1, what="the short run's worker to end")
    os.kill(worker_pids()[0], signal.SIGKILL)
    caller.join(60)
    assert not caller.is_alive()
    error = outcome.get("error")
    assert isinstance(error, WorkerFailed), error
    message = str(error)
    assert "long run" in message and "SIGKILL" in message and "short run" not in message
    assert "running the cell again trains only what is missing" in message
    assert not worker_pids()
    # The short run was kept: run again (the long one shorter now), it is read back.
    again = runs.train_or_load_many(
        [runs.Job("mlp", seed=0, recipe={"steps": 20}), jobs[1]],
        data,
        model_options=MLP,
        workers=2,
        progress=False,
        **SPIRALS,
    )
    assert [h.config["cached"] for _, h in again] == [False, True]


@needs_proc
def test_interrupting_the_cell_stops_every_worker(cache):
    jobs = [runs.Job("mlp", seed=seed, recipe={"steps": 200_000}) for seed in (0, 1)]
    seen = []

    def interrupt():
        wait_for(lambda: len(worker_pids(parent)) == 2, what="two workers")
        seen.extend(worker_pids(parent))
        time.sleep(1.0)  # both are training
        _thread.interrupt_main()  # what Jupyter's stop button does to the kernel

    parent = os.getpid()
    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runs.train_or_load_many(
            jobs, make_spirals(200), model_options=MLP, workers=2, progress=False, **SPIRALS
        )
    assert len(seen) == 2 and not any(alive(pid) for pid in seen)
    assert time.monotonic() - start < 60
    assert not list(cache.glob("*.json"))  # nothing half-made was kept


@needs_proc
def test_a_worker_ends_when_its_notebook_dies(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(
        textwrap.dedent(
            """
            from resnet_course import runs
            from resnet_course.data import make_spirals

            runs.train_or_load_many(
                [runs.Job("mlp", seed=s, recipe={"steps": 200_000}) for s in (0, 1)],
                make_spirals(200), model_options={"depth": 4, "width": 16}, workers=2,
                progress=False, batch_size=32, lr=0.05, schedule="constant", cache=False,
            )
            """
        )
    )
    notebook = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
    try:
        wait_for(lambda: len(worker_pids(notebook.pid)) == 2, what="two workers")
        workers = worker_pids(notebook.pid)
        notebook.kill()  # a killed kernel: no chance to stop anything
        notebook.wait()
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=20, what="workers to end")
    finally:
        notebook.kill()


def _fails(payload, shared, report):
    raise ValueError(f"cannot make {payload}")


def _finishes(payload, shared, report):
    report(1)


def test_a_job_that_raises_is_named_in_one_sentence(monkeypatch):
    # A worker imports a job's function by its module's name: this file's, from tests/.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
    jobs = [Job(_fails, "the block", "failing job", 1), Job(_finishes, None, "fine job", 1)]
    with pytest.raises(WorkerFailed) as raised:
        run_side_by_side(jobs, workers=2, progress=False)
    message = str(raised.value)
    assert "1 of 2 runs did not finish" in message
    assert "failing job: ValueError: cannot make the block" in message
    assert "fine job" not in message.split("(")[1]


def test_stop_and_on_step_are_refused_with_a_sentence():
    with pytest.raises(TypeError, match="use train_or_load for a run with stop= or on_step="):
        runs.train_or_load_many(["mlp"], make_spirals(50), steps=1, stop=lambda: True)
