# Exercise 3, From ResNet-34 to ResNet-50: the solution's code cells.

class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride), 1x1 expand to planes * 4
    channels, plus the shortcut.
    """

    expansion = 4  # the course's ResNet reads these two attributes
    preact = False

    # ResNet passes options this block ignores
    def __init__(self, in_channels, planes, stride=1, **unused):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


resnet50 = ResNet(Bottleneck, [3, 4, 6, 3])


sizes = {
    name: {
        "parameters": count_parameters(model),
        "flops": count_macs(model, (1, 3, 224, 224)),
    }
    for name, model in (("resnet34", resnet34), ("resnet50", resnet50))
}
