import threading

import pytest
import torch

from resnet_course.data import make_spirals
from resnet_course.models import MLP, create_model
from resnet_course.train import PRESETS, TrainingRun, fit, get_preset, pick_device, set_seed


def test_fit_lowers_the_loss_on_spirals():
    set_seed(0)
    data = make_spirals(200)
    history = fit(MLP(4, 64), data, epochs=60, lr=0.1, batch_size=32, schedule="constant", progress=False)
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert len(history.epochs) == 60 and len(history.test_acc) == 60
    assert history.images_per_s[-1] > 0 and not history.stopped


def test_fit_on_cifar_lowers_the_loss(cifar_available):
    set_seed(0)
    history = fit(create_model("resnet20", width=4), cifar_available, epochs=3, lr=0.05, progress=False, label="resnet20")
    assert history.train_loss[-1] < history.train_loss[0]
    assert "resnet20" in history.summary()


def test_same_seed_same_history():
    runs = []
    for _ in range(2):
        set_seed(1)
        runs.append(fit(MLP(4, 16), make_spirals(100), epochs=2, batch_size=32, progress=False, seed=5).step_loss)
    assert runs[0] == runs[1]


def test_stop_mid_epoch_keeps_the_history():
    data = make_spirals(500)
    stop = threading.Event()

    def request_stop(history):
        if len(history.steps) == 7:
            stop.set()

    history = fit(MLP(4, 16), data, epochs=5, batch_size=16, stop=stop, on_step=request_stop, progress=False)
    assert history.stopped
    assert history.steps == list(range(1, 8))
    assert len(history.epochs) == 1 and history.epochs[0] < 1  # the partial epoch is summarised


def test_stop_as_a_callable_and_iterating_a_run():
    data = make_spirals(100)
    run = TrainingRun(MLP(3, 8), data, epochs=10, batch_size=10, stop=lambda: len(run.history.steps) >= 3, progress=False)
    steps = list(run)
    assert steps == [1, 2, 3] and run.history.stopped


def test_schedule_divides_lr_at_milestones():
    data = make_spirals(64)
    history = fit(MLP(3, 8), data, epochs=4, batch_size=51, lr=0.1, schedule="step", progress=False)
    assert history.lr == pytest.approx([0.1, 0.1, 0.01, 0.001])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": -1}, "learning rate"), ({"epochs": 1, "schedule": "linear"}, "schedule"),
     ({"epochs": 1, "batch_size": 10**6}, "batch_size")],
)
def test_bad_options_are_refused_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(MLP(3, 8), make_spirals(50), progress=False, **kwargs)


def test_presets_and_device(monkeypatch):
    assert get_preset("book") is PRESETS["book"]
    assert get_preset("quick") is PRESETS["book"] and get_preset("full") is PRESETS["gpu"]  # the first version's names
    with pytest.raises(ValueError, match="book, cpu, gpu"):
        get_preset("huge")
    monkeypatch.delenv("RESNET_COURSE_PRESET", raising=False)
    assert get_preset().name == ("gpu" if torch.cuda.is_available() else "cpu")
    for preset in PRESETS.values():  # every preset states who it is for and its time budget
        assert preset.audience and "minutes" in preset.budget and preset.budget in preset.describe()
    assert pick_device().type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused(lr):
    with pytest.raises(ValueError, match="positive, finite"):
        fit(MLP(3, 8), make_spirals(50), epochs=1, lr=lr, progress=False)


def test_a_diverging_run_stops_within_a_few_steps_and_says_so():
    set_seed(0)
    history = fit(MLP(4, 32), make_spirals(200), epochs=50, lr=1e6, batch_size=32, schedule="constant", progress=False)
    assert history.diverged and history.diverged_at_step <= 5
    assert len(history.steps) == history.diverged_at_step  # nothing trained after the bad step
    assert "diverged" in history.message and "lower the learning rate" in history.message
    assert history.summary().count("diverged") == 1 and "nan" not in history.summary().split("became")[0]
    assert not history.stopped  # diverging is not a Stop click


def test_steps_trains_exactly_that_many_steps():
    history = fit(MLP(3, 8), make_spirals(100), steps=7, batch_size=16, progress=False)
    assert history.steps[-1] == 7 and history.config["steps"] == 7
    with pytest.raises(ValueError, match="either epochs= or steps="):
        fit(MLP(3, 8), make_spirals(100), epochs=1, steps=7, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        fit(MLP(3, 8), make_spirals(100), steps=2.5, progress=False)


def test_precision_is_bf16_where_supported_else_fp16_on_cuda_and_fp32_elsewhere():
    from resnet_course.train import choose_precision

    assert choose_precision("auto", "cuda", bf16_supported=True) == "bf16"  # A100, H100
    assert choose_precision("auto", "cuda", bf16_supported=False) == "fp16"  # T4, V100
    assert choose_precision("auto", "cpu", bf16_supported=False) == "fp32"
    assert choose_precision("auto", "mps", bf16_supported=False) == "fp32"
    assert choose_precision("fp32", "cuda", bf16_supported=True) == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        choose_precision("fp16", "cpu", bf16_supported=False)
    with pytest.raises(ValueError, match="unknown precision"):
        choose_precision("int8", "cuda", bf16_supported=True)


def test_image_models_run_channels_last_on_the_cpu(cifar_available):
    run = TrainingRun(create_model("resnet20", width=4), cifar_available, steps=1, device="cpu", progress=False)
    assert run.channels_last and run.history.precision == "fp32"
    points = TrainingRun(MLP(3, 8), make_spirals(50), steps=1, batch_size=16, device="cpu", progress=False)
    assert not points.channels_last


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_with_a_gradient_scaler_trains_on_cuda(cifar_available):
    history = fit(create_model("resnet20", width=4), cifar_available, steps=8, precision="fp16", progress=False)
    assert history.precision == "fp16" and all(map(lambda v: v == v, history.step_loss))
