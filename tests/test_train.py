import threading
import warnings

import pytest
import torch

from resnet_course.data import make_spirals
from resnet_course.devices import (
    narrowest_conv_channels,
    pick_device,
    use_channels_last,
)
from resnet_course.models import MLP, create_model
from resnet_course.presets import PRESETS, get_preset
from resnet_course.recipe import TrainConfig, learning_rate
from resnet_course.train import History, TrainingDiverged, TrainingRun, fit, set_seed


def test_fit_lowers_the_loss_on_spirals():
    set_seed(0)
    data = make_spirals(200)
    history = fit(
        MLP(4, 64), data, epochs=60, lr=0.1, batch_size=32, schedule="constant", progress=False
    )
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert len(history.epochs) == 60 and len(history.test_acc) == 60
    assert history.images_per_s[-1] > 0 and not history.stopped


def test_fit_on_cifar_lowers_the_loss(cifar_available):
    set_seed(0)
    history = fit(
        create_model("resnet20", width=4),
        cifar_available,
        epochs=3,
        lr=0.05,
        progress=False,
        label="resnet20",
    )
    assert history.train_loss[-1] < history.train_loss[0]
    assert "resnet20" in history.summary()


def test_same_seed_same_history():
    runs = []
    for _ in range(2):
        set_seed(1)
        runs.append(
            fit(
                MLP(4, 16), make_spirals(100), epochs=2, batch_size=32, progress=False, seed=5
            ).step_loss
        )
    assert runs[0] == runs[1]


def test_stop_mid_epoch_keeps_the_history():
    data = make_spirals(500)
    stop = threading.Event()

    def request_stop(history):
        if len(history.steps) == 7:
            stop.set()

    history = fit(
        MLP(4, 16), data, epochs=5, batch_size=16, stop=stop, on_step=request_stop, progress=False
    )
    assert history.stopped
    assert history.steps == list(range(1, 8))
    assert len(history.epochs) == 1 and history.epochs[0] < 1  # the partial epoch is summarised


def test_stop_as_a_callable_and_iterating_a_run():
    data = make_spirals(100)
    run = TrainingRun(
        MLP(3, 8),
        data,
        epochs=10,
        batch_size=10,
        stop=lambda: len(run.history.steps) >= 3,
        progress=False,
    )
    steps = list(run)
    assert steps == [1, 2, 3] and run.history.stopped


def test_schedule_divides_lr_at_milestones():
    data = make_spirals(64)
    history = fit(MLP(3, 8), data, epochs=4, batch_size=51, lr=0.1, schedule="step", progress=False)
    assert history.lr == pytest.approx([0.1, 0.1, 0.01, 0.001])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1, "lr": -1}, "learning rate"),
        ({"epochs": 1, "schedule": "linear"}, "schedule"),
        ({"epochs": 1, "batch_size": 10**6}, "batch_size"),
    ],
)
def test_bad_options_are_refused_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(MLP(3, 8), make_spirals(50), progress=False, **kwargs)


def test_presets_and_device(monkeypatch):
    assert get_preset("cpu") is PRESETS["cpu"] and get_preset(" GPU ") is PRESETS["gpu"]
    with pytest.raises(ValueError, match="cpu, gpu"):
        get_preset("huge")
    with pytest.raises(ValueError, match="cpu, gpu"):
        get_preset("book")  # the book is built with the cpu preset: one preset, no second name
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
    with pytest.warns(TrainingDiverged):
        history = fit(
            MLP(4, 32),
            make_spirals(200),
            epochs=50,
            lr=1e6,
            batch_size=32,
            schedule="constant",
            progress=False,
        )
    assert history.diverged and history.diverged_at_step <= 5
    assert len(history.steps) == history.diverged_at_step  # nothing trained after the bad step
    assert "diverged" in history.message and "lower the learning rate" in history.message
    assert (
        history.summary().count("diverged") == 1
        and "nan" not in history.summary().split("became")[0]
    )
    assert not history.stopped  # diverging is not a Stop click


def test_a_diverging_run_warns_once_with_its_sentence_where_fit_was_called():
    # A Python warning is what Jupyter shows under the cell; history.message alone says nothing.
    set_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(MLP(4, 32), make_spirals(200), steps=50, lr=1e6, progress=False)
    diverged = [w for w in caught if issubclass(w.category, TrainingDiverged)]
    assert history.diverged and len(diverged) == 1
    assert str(diverged[0].message) == history.message
    assert diverged[0].filename == __file__  # points at the caller's line, not the loop's
    assert issubclass(TrainingDiverged, RuntimeWarning)


def test_a_run_that_does_not_diverge_does_not_warn():
    set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDiverged)
        history = fit(MLP(3, 8), make_spirals(50), steps=3, batch_size=16, progress=False)
    assert not history.diverged


def test_steps_trains_exactly_that_many_steps():
    history = fit(MLP(3, 8), make_spirals(100), steps=7, batch_size=16, progress=False)
    assert history.steps[-1] == 7 and history.config["steps"] == 7
    with pytest.raises(ValueError, match="either epochs= or steps="):
        fit(MLP(3, 8), make_spirals(100), epochs=1, steps=7, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        fit(MLP(3, 8), make_spirals(100), steps=2.5, progress=False)


def test_precision_is_bf16_where_supported_else_fp16_on_cuda_and_fp32_elsewhere():
    from resnet_course.devices import choose_precision

    assert choose_precision("auto", "cuda", bf16_supported=True) == "bf16"  # A100, H100
    assert choose_precision("auto", "cuda", bf16_supported=False) == "fp16"  # T4, V100
    assert choose_precision("auto", "cpu", bf16_supported=False) == "fp32"
    assert choose_precision("auto", "mps", bf16_supported=False) == "fp32"
    assert choose_precision("fp32", "cuda", bf16_supported=True) == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        choose_precision("fp16", "cpu", bf16_supported=False)
    with pytest.raises(ValueError, match="unknown precision"):
        choose_precision("int8", "cuda", bf16_supported=True)


def test_a_cpu_run_of_a_course_network_is_one_thread_and_channels_last(
    cifar_available, two_threads
):
    """On a CPU the course's networks train on one thread, where channels-last is the faster layout;
    asked for two threads, a width-8 network keeps the default layout and a width-16 one does not."""

    def one_step(width, **options):
        model = create_model("resnet20", width=width)
        return TrainingRun(model, cifar_available, steps=1, device="cpu", progress=False, **options)

    narrow = one_step(8)
    assert narrow.threads == 1 and narrow.channels_last and narrow.history.precision == "fp32"
    assert narrow.history.device == "cpu (1 thread)"
    weights = [p for p in narrow.model.parameters() if p.dim() == 4]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    two = one_step(8, threads=2)
    assert two.threads == 2 and not two.channels_last
    assert next(two.model.parameters()).is_contiguous()
    assert one_step(16, threads=2).channels_last
    points = TrainingRun(
        MLP(3, 8), make_spirals(50), steps=1, batch_size=16, device="cpu", progress=False
    )
    assert not points.channels_last and points.threads == 1


def test_a_large_network_keeps_torchs_threads(two_threads):
    from resnet_course.devices import ONE_THREAD_MAX_PARAMETERS, place

    small, large = MLP(3, 8), torch.nn.Linear(1500, 1500)
    assert sum(p.numel() for p in large.parameters()) > ONE_THREAD_MAX_PARAMETERS
    assert place(small, is_image=False, device="cpu").threads == 1
    assert place(large, is_image=False, device="cpu").threads == 2
    assert place(large, is_image=False, device="cpu", threads=1).threads == 1


def test_channels_last_rule():
    def rule(device, channels, threads=2, is_image=True):
        return use_channels_last(
            device, is_image=is_image, narrowest_channels=channels, threads=threads
        )

    assert rule("cuda", 8) and rule("cpu", 16) and rule("cpu", 8, threads=1)
    assert not rule("cpu", 8) and not rule("cpu", 8, threads=4)
    assert not rule("mps", 64) and not rule("cuda", None, is_image=False)
    assert narrowest_conv_channels(create_model("resnet20", width=8)) == 8
    assert narrowest_conv_channels(MLP(3, 8)) is None


def test_the_2d_toys_train_on_one_cpu_thread_and_give_the_threads_back(two_threads):
    seen = []
    history = fit(
        MLP(3, 8),
        make_spirals(64),
        steps=4,
        batch_size=16,
        device="cpu",
        progress=False,
        on_step=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    assert history.device == "cpu (1 thread)"

    # A run abandoned mid-way (a dashboard's Stop, an error) gives the threads back too.
    steps = iter(TrainingRun(MLP(3, 8), make_spirals(64), steps=4, batch_size=16, progress=False))
    next(steps)
    assert torch.get_num_threads() == 1
    steps.close()
    assert torch.get_num_threads() == 2


def test_sequence_models_train_on_one_cpu_thread_too(two_threads):
    from resnet_course.beyond import TinyTransformer, make_sequence_task

    tokens = make_sequence_task("sort", length=4, vocab=4, train_size=32, test_size=8)
    seen = []
    history = fit(
        TinyTransformer(4, 4, dim=8, depth=1, heads=2),
        tokens,
        steps=2,
        batch_size=16,
        optimizer="adam",
        device="cpu",
        progress=False,
        on_step=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen and set(seen) == {1} and history.device == "cpu (1 thread)"
    assert torch.get_num_threads() == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_with_a_gradient_scaler_trains_on_cuda(cifar_available):
    history = fit(
        create_model("resnet20", width=4),
        cifar_available,
        steps=8,
        precision="fp16",
        progress=False,
    )
    assert history.precision == "fp16" and all(map(lambda v: v == v, history.step_loss))


# --- the recipe as one config ------------------------------------------------------------------


def _spiral_fit(**options):
    """A run on make_spirals(200), in batches of 32 unless a config says otherwise."""
    if "config" not in options:
        options = {"batch_size": 32, **options}
    set_seed(0)
    return fit(MLP(4, 16), make_spirals(200), progress=False, **options)


def _numbers(history):
    return history.step_loss, history.train_loss, history.test_acc, history.lr, history.config


def test_fit_with_a_config_is_the_run_its_keywords_describe():
    keywords = dict(epochs=3, lr=0.05, schedule="cosine", warmup_epochs=1, momentum=0.8, seed=2)
    by_keywords = _spiral_fit(**keywords)
    by_config = _spiral_fit(config=TrainConfig(batch_size=32, **keywords))
    assert _numbers(by_config) == _numbers(by_keywords)


def test_keywords_given_beside_a_config_replace_its_fields():
    config = TrainConfig(epochs=3, lr=0.05, batch_size=32, schedule="constant")
    history = _spiral_fit(config=config, lr=0.02)
    assert history.lr == [0.02] * 3 and history.config["lr"] == 0.02
    # A length beside the config replaces the config's length, whichever way each gives it.
    shorter = _spiral_fit(config=config, steps=4)
    assert shorter.steps[-1] == 4 and shorter.config["steps"] == 4
    assert _numbers(_spiral_fit(config=config, lr=0.02)) == _numbers(
        _spiral_fit(config=config.replace(lr=0.02))
    )
    with pytest.raises(
        TypeError, match="label_smoothing"
    ):  # an option the loop does not have is refused, not ignored
        _spiral_fit(config=config, label_smoothing=0.1)


def test_steps_and_epochs_of_the_same_length_are_the_same_run():
    # 200 examples in batches of 32: 6 steps an epoch.
    for epochs, steps in ((2, 20), (2.5, 25)):
        by_epochs, by_steps = (
            _spiral_fit(epochs=epochs, schedule="cosine"),
            _spiral_fit(steps=steps, schedule="cosine"),
        )
        assert by_steps.steps == by_epochs.steps and by_steps.step_loss == by_epochs.step_loss
        assert by_steps.epochs == by_epochs.epochs and by_steps.lr == by_epochs.lr
        assert by_steps.config["epochs"] == pytest.approx(epochs)
    # The first version's "N steps": epochs=N with max_steps=N.
    capped = _spiral_fit(epochs=9, max_steps=9, schedule="cosine")
    assert (
        capped.step_loss == _spiral_fit(steps=9, schedule="cosine").step_loss
        and capped.config["steps"] == 9
    )


def test_the_schedule_at_warmup_end_milestones_and_cosine_end():
    step = dict(total_steps=100, lr=0.1, schedule="step", milestone_steps=(50, 75), warmup_steps=10)
    assert learning_rate(0, **step) == pytest.approx(0.01)  # the ramp starts at lr / warmup_steps
    assert learning_rate(9, **step) == 0.1  # and reaches lr on the warm-up's last step
    assert [learning_rate(s, **step) for s in (49, 50, 74, 75, 99)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert (
        learning_rate(5, **{**step, "warmup_lr": 0.01}) == 0.01
    )  # a constant warm-up, as the paper's ResNet-110
    cosine = dict(total_steps=100, lr=0.1, schedule="cosine", warmup_steps=20)
    assert learning_rate(20, **cosine) == pytest.approx(0.1)
    assert learning_rate(60, **cosine) == pytest.approx(0.05)  # half-way through the decay
    assert (
        learning_rate(100, **cosine) == pytest.approx(0.0, abs=1e-12)
        and 0 < learning_rate(99, **cosine) < 1e-3
    )
    assert learning_rate(99, total_steps=100, lr=0.3, schedule="constant") == 0.3


def test_milestones_as_fractions_drop_where_the_fraction_of_the_run_is_passed():
    for total in (7, 10, 33, 64_000):
        rates = TrainConfig(epochs=1, milestones=(0.3, 0.5, 0.75)).learning_rates(
            total, steps_per_epoch=total
        )
        for s in range(0, total, max(1, total // 500)):
            drops = sum(s >= fraction * total for fraction in (0.3, 0.5, 0.75))
            assert rates(s) == 0.1 * 0.1**drops, (total, s)


def test_a_configs_length_is_replaced_whole():
    config = TrainConfig(steps=6, lr=0.05)
    assert config.replace(epochs=2) == TrainConfig(
        epochs=2, lr=0.05
    )  # the new length replaces the old


def test_one_evaluate_for_the_loop_and_the_analysis():
    from resnet_course.analysis import evaluate_accuracy
    from resnet_course.train import evaluate

    set_seed(0)
    data = make_spirals(200)
    run = TrainingRun(MLP(4, 16), data, epochs=2, batch_size=32, progress=False)
    list(run)
    loss, accuracy = run.evaluate_test()
    assert (loss, accuracy) == (run.history.test_loss[-1], run.history.test_acc[-1])
    assert evaluate_accuracy(run.model, data) == accuracy == evaluate(run.model, data)[1]
    # Every submodule gets its own mode back: a frozen (eval-mode) part stays frozen.
    run.model.train()
    frozen = run.model.layers[1]
    frozen.eval()
    evaluate(run.model, data)
    assert (
        run.model.training and not frozen.training and not any(m.training for m in frozen.modules())
    )


def _tiny_images(count=16, size=8, classes=10):
    from resnet_course.data import TensorData

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % classes
    return TensorData(
        images,
        labels,
        images[:8],
        labels[:8],
        classes=tuple(str(i) for i in range(classes)),
        name="tiny-images",
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def test_a_cifar_network_on_the_2d_spirals_is_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"do not fit") as error:
        TrainingRun(
            create_model("resnet20", width=4),
            make_spirals(50),
            steps=2,
            batch_size=16,
            progress=False,
        )
    message = str(error.value)
    assert "conv1" in message and "N x 3 x H x W" in message  # what the model takes
    assert "N x 2" in message and "spirals" in message  # what the data gives
    assert "MLP(" in message  # and what would fit


def test_an_mlp_on_images_is_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"do not fit") as error:
        fit(MLP(4, 16), _tiny_images(), steps=2, batch_size=8, progress=False)
    message = str(error.value)
    assert "N x 2)" in message and "N x 3 x 8 x 8" in message
    assert "cifar_resnet(" in message


def test_a_model_with_fewer_outputs_than_the_data_has_classes_is_refused():
    with pytest.raises(ValueError, match=r"2 class scores.*3 classes.*num_classes=3"):
        fit(MLP(4, 16), make_spirals(50, classes=3), steps=2, batch_size=16, progress=False)


def test_the_fit_check_leaves_the_model_as_it_was():
    set_seed(0)
    model = create_model("resnet20", width=4)
    model.layer1.eval()  # a frozen part stays frozen
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    TrainingRun(model, _tiny_images(), steps=2, batch_size=8, progress=False, device="cpu")
    assert model.training and not model.layer1.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor.to(before[name].dtype), before[name]), name


def test_a_runs_speed_is_its_images_over_its_training_seconds():
    """One measure of speed: not the last epoch's, not a plain mean of the epochs'."""
    history = History(epochs=[1.0, 2.0], images_per_s=[100.0, 300.0])
    assert history.images_per_second == pytest.approx(2 / (1 / 100 + 1 / 300))  # 150, not 200
    partial = History(epochs=[1.0, 1.5], images_per_s=[100.0, 50.0])
    assert partial.images_per_second == pytest.approx(1.5 / (1 / 100 + 0.5 / 50))
    assert History().images_per_second is None
    finished = History(
        label="r",
        device="cpu (1 thread)",
        epochs=[1.0, 2.0],
        train_loss=[1, 0.5],
        train_acc=[0.1, 0.5],
        images_per_s=[100.0, 300.0],
        wall_time=3.0,
    )
    assert "training at 150 images/s" in finished.summary()
    assert "on one CPU thread" in finished.summary() and "2 epochs" in finished.summary()
