# Exercise 5, The pre-activation block: the solution's code cells.

class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016): BN-ReLU-conv twice, then
    the addition, and nothing after it.
    """

    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        # not in place: x itself is the identity term
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, planes, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = self.relu(self.bn1(x))
        identity = (
            x if self.downsample is None else self.downsample(out)
        )
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity
