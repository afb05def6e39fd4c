# Exercise 6, A ResNeXt block: the solution's code cells.

class ResNeXtBlock(nn.Module):
    """A ResNeXt block (Xie et al. 2017, Fig. 3c): 1x1, grouped 3x3,
    1x1, plus the shortcut.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        stride=1,
        cardinality=32,
        group_width=4,
    ):
        super().__init__()
        width = cardinality * group_width
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        # One grouped convolution does the work of `cardinality`
        # separate 3x3 convolutions.
        self.conv2 = nn.Conv2d(
            width,
            width,
            3,
            stride=stride,
            padding=1,
            groups=cardinality,
            bias=False,
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
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
