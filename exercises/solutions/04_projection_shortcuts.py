# Exercise 4, Projection shortcuts: the solution's code cells.

class ZeroPadShortcut(nn.Module):
    """Option A: subsample, then zero-pad the extra channels. No
    parameters.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dimensions first: (left, right, top,
        # bottom, front, back) channels last.
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class ProjectionShortcut(nn.Module):
    """Option B: a strided 1x1 convolution and a BN."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, 1, stride=stride, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


# ResNet-20 changes shape twice, at the start of stages 2 and 3: 16 ->
# 32 and 32 -> 64 channels.
option_b_extra = count_parameters(
    ProjectionShortcut(16, 32, 2)
) + count_parameters(ProjectionShortcut(32, 64, 2))
