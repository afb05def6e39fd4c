# Exercise 2, Plain against residual: the solution's code cells.

def make_cifar_net(depth, *, residual, width=8, num_classes=10):
    """The CIFAR network of He et al. (2015, section 4.2) of depth 6n +
    2, residual or plain.
    """
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    layers = [
        nn.Conv2d(3, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    ]
    channels = width
    for stage, planes in enumerate((width, 2 * width, 4 * width)):
        for index in range(n):
            stride = 2 if stage > 0 and index == 0 else 1
            if residual:
                layers.append(
                    BasicBlock(channels, planes, stride, shortcut="A")
                )
            else:
                layers.append(PlainBlock(channels, planes, stride))
            channels = planes
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ]
    net = nn.Sequential(*layers)
    for module in net.modules():
        # He initialisation, as in the paper
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_out", nonlinearity="relu"
            )
    return net


for name, residual in (("residual", True), ("plain", False)):
    set_seed(SETUP.training.seed)
    model = make_cifar_net(
        SETUP.depth, residual=residual, width=SETUP.width
    )
    histories[name] = fit(
        model,
        data,
        SETUP.training,
        label=f"{name}-{SETUP.depth}",
    )
    print(histories[name].summary())
