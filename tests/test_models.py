import pytest
import torch
import torchvision

from resnet_course.analysis import count_macs, count_parameters
from resnet_course.models import MLP, cifar_resnet, cifar_resnext, create_model, list_models

TORCHVISION_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
}


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMETERS))
def test_imagenet_models_load_torchvision_weights_and_match_parameter_counts(name):
    ours = create_model(name)
    reference = getattr(torchvision.models, name)()
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert count_parameters(ours) == count_parameters(reference) == TORCHVISION_PARAMETERS[name]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_imagenet_models_compute_what_torchvision_computes(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)().eval()
    # Non-trivial BN statistics, so a mistake in the eval path would show.
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = create_model(name).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        difference = (ours(x) - reference(x)).abs().max().item()
    assert difference < 1e-5


def test_cifar_models_match_the_paper():
    # He et al. 2015, Table 6: ResNet-20 0.27M, ResNet-110 1.7M parameters.
    assert round(count_parameters(create_model("resnet20")) / 1e6, 2) == 0.27
    assert round(count_parameters(create_model("resnet110")) / 1e6, 1) == 1.7
    # He et al. 2016, Table 2: pre-activation ResNet-164 1.7M, ResNet-1001 10.2M. The network has
    # 10.33M parameters in all; 10.2M is its count without BatchNorm's scales and shifts (10.18M).
    assert round(count_parameters(create_model("preact_resnet164")) / 1e6, 1) == 1.7
    resnet1001 = create_model("preact_resnet1001")
    batchnorm = sum(
        p.numel()
        for m in resnet1001.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters()
    )
    assert round((count_parameters(resnet1001) - batchnorm) / 1e6, 1) == 10.2
    assert round(count_parameters(resnet1001) / 1e6, 1) == 10.3
    # Xie et al. 2017, Table 7: ResNeXt-29 8x64d has 34.4M parameters.
    assert round(count_parameters(create_model("resnext29_8x64d")) / 1e6, 1) == 34.4


@pytest.mark.parametrize("name", ["resnet20", "plain20", "preact_resnet110", "resnext29_small"])
def test_cifar_forward_shapes(name):
    model = create_model(name, width=8) if name != "resnext29_small" else create_model(name)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_plain_twin_has_the_same_parameters_as_the_resnet_with_option_a():
    assert count_parameters(create_model("plain56")) == count_parameters(create_model("resnet56"))


def test_depths_and_blocks_per_stage():
    model = cifar_resnet(56)
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [9, 9, 9]
    assert len(list(model.named_blocks())) == 27
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs + 1 == 56  # 55 convolutions + the classifier


def test_a_network_names_the_block_it_is_built_from_without_storing_it():
    assert create_model("resnet18").block.__name__ == "BasicBlock"
    assert create_model("resnet50").block.__name__ == "Bottleneck"
    assert cifar_resnet(20, block="preact").block.__name__ == "PreActBlock"
    assert "block" not in vars(
        create_model("resnet18")
    )  # derived from the stages, so it cannot drift


def test_width_gives_cpu_scale_variants():
    narrow = create_model("resnet20", width=4)
    assert count_parameters(narrow) < count_parameters(create_model("resnet20")) / 10
    assert narrow.layer3[0].conv1.out_channels == 16


def test_unknown_model_name_lists_the_valid_choices():
    with pytest.raises(ValueError) as info:
        create_model("resnet21")
    message = str(info.value)
    assert "resnet20" in message and "6n+2" in message and "resnet50" in message


def test_invalid_depth_names_valid_depths():
    with pytest.raises(ValueError, match=r"6n\+2.*20, 26, 32"):
        cifar_resnet(21)
    with pytest.raises(ValueError, match=r"9n\+2"):
        cifar_resnet(170, block="bottleneck")


def test_unknown_keyword_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match="width"):
        create_model("resnet20", widht=8)


def test_list_models_contains_both_families():
    names = list_models()
    for name in (
        "resnet20",
        "resnet1202",
        "plain56",
        "preact_resnet1001",
        "resnext29_8x64d",
        "resnet152",
        "resnext50_32x4d",
        "mlp",
    ):
        assert name in names


@pytest.mark.parametrize(
    "name, gflops",
    [
        ("resnet18", 1.814),
        ("resnet34", 3.664),
        ("resnet50", 4.089),
        ("resnet101", 7.801),
        ("resnet152", 11.514),
    ],
)
def test_flop_counts_match_torchvision(name, gflops):
    counted = count_macs(create_model(name)) / 1e9
    assert abs(counted - gflops) / gflops < 0.01


def test_mlps_plain_and_residual_share_parameters():
    plain, residual = MLP(10, 16), MLP(10, 16, residual=True)
    assert count_parameters(plain) == count_parameters(residual)
    assert plain(torch.randn(5, 2)).shape == (5, 2)
    with pytest.raises(ValueError, match="depth"):
        MLP(1)


@pytest.mark.parametrize(
    "build",
    [
        lambda depth: MLP(depth, 16),
        lambda depth: create_model("mlp", depth=depth),
        lambda depth: create_model("residual_mlp", depth=depth),
        lambda depth: cifar_resnext(depth=depth),
    ],
    ids=["MLP", "mlp", "residual_mlp", "cifar_resnext"],
)
@pytest.mark.parametrize("depth", ["8", 8.0, True])
def test_a_depth_that_is_not_an_integer_gets_one_sentence(build, depth):
    with pytest.raises(
        ValueError, match=r"^depth must be a whole number of layers such as [^,]+, got .*\)\.$"
    ):
        build(depth)


def test_cifar_resnext_groups_have_the_named_width():
    # "8x64d": 8 groups of 64 channels in the first stage; the small model: 4 groups of 8.
    paper = create_model("resnext29_8x64d").layer1[0].conv2
    assert (paper.groups, paper.out_channels) == (8, 8 * 64)
    small = create_model("resnext29_small").layer1[0].conv2
    assert (small.groups, small.out_channels) == (4, 4 * 8)


def test_an_impossible_depth_is_refused_before_it_is_built_with_its_size():
    # cifar_resnet(600002) is a valid 6n+2 depth; building it once filled 24 GB and was killed.
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"600,002-layer") as error:
        cifar_resnet(600002)
    assert time.perf_counter() - start < 5  # refused, not built
    message = str(error.value)
    assert "9.7 billion parameters" in message and "39 GB" in message
    assert "2,000 layers" in message  # the limit, and why there is one


def test_a_network_whose_weights_exceed_the_free_memory_is_refused(monkeypatch):
    from resnet_course import sizes

    monkeypatch.setattr(sizes, "available_memory", lambda: 2_000_000)  # 2 MB free
    with pytest.raises(ValueError, match=r"110-layer.*1\.7 million parameters.*2 MB free"):
        cifar_resnet(110)
    cifar_resnet(20, width=4)  # what fits still builds
    monkeypatch.setattr(sizes, "available_memory", lambda: None)  # unknown: no memory check
    cifar_resnet(110)


@pytest.mark.parametrize(
    "name, depth",
    [
        ("resnet20", 20),
        ("plain20", 20),
        ("preact_resnet164", 164),
        ("resnext29_small", 29),
        ("resnet50", 50),
        ("resnext50_32x4d", 50),
        ("preact_resnet18", 18),
    ],
)
def test_the_size_estimate_is_the_built_networks_depth_and_parameter_count(
    name, depth, monkeypatch
):
    from resnet_course import sizes

    estimates = []  # what ResNet estimated before building, from its own arguments
    estimate = sizes.network_size
    monkeypatch.setattr(
        sizes,
        "network_size",
        lambda *a, **kw: estimates.append(estimate(*a, **kw)) or estimates[-1],
    )
    model = create_model(name)
    assert estimates == [(depth, count_parameters(model))]


def test_an_impossibly_deep_mlp_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match=r"600,002-layer network would hold 633\.6 million"):
        MLP(600002)
    model = MLP(8, 16, in_features=3, num_classes=4)
    assert count_parameters(model) == 4 * 16 + 6 * (16 * 16 + 16) + 17 * 4


def test_an_imagenet_network_refuses_cifar_arguments_naming_the_ones_it_accepts():
    # preact_resnet18 was once filed as a CIFAR network by its name's prefix: width passed the
    # check and failed inside ResNet with a TypeError.
    with pytest.raises(ValueError, match=r"preact_resnet18.*width.*ImageNet") as error:
        create_model("preact_resnet18", width=8)
    for accepted in ("stem_channels", "num_classes", "in_channels", "zero_init_last"):
        assert accepted in str(error.value)


def test_an_imagenet_network_takes_the_imagenet_arguments():
    model = create_model("preact_resnet18", stem_channels=32, num_classes=7)
    assert model.conv1.out_channels == 32 and model.fc.out_features == 7
    wider = create_model("resnext50_32x4d", width_per_group=8)  # its own default, replaced
    assert (
        wider.layer1[0].conv2.out_channels
        == 2 * create_model("resnext50_32x4d").layer1[0].conv2.out_channels
    )


def test_every_model_is_registered_with_its_family():
    from resnet_course.models import model_family

    family = {name: model_family(name) for name in list_models()}
    for name in ("resnet18", "resnet50", "preact_resnet18", "preact_resnet50", "wide_resnet50_2"):
        assert family[name] == "imagenet", name
    for name in ("resnet20", "resnet1202", "plain20", "preact_resnet110", "preact_resnet1001"):
        assert family[name] == "cifar", name
    assert family["resnext29_small"] == "resnext" and family["residual_mlp"] == "mlp"


def test_the_family_is_the_one_registered_not_read_off_the_name(monkeypatch):
    from resnet_course import models

    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))
    # "plain..." once meant a CIFAR network whatever it was.
    models.register(
        "plain18",
        lambda **kw: models.imagenet_resnet(models.PlainBlock, [2, 2, 2, 2], **kw),
        family="imagenet",
    )
    assert create_model("plain18", stem_channels=8, num_classes=3).fc.out_features == 3
    with pytest.raises(ValueError, match="unknown model family 'tiny'.*cifar"):
        models.register("tiny", lambda **kw: MLP(3), family="tiny")
