# Exercise 7, Bug hunt: the solution's code cells.

class Block1(nn.Module):
    """Meant to be a BasicBlock with option-B shortcuts; it has one bug.
    """

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, planes, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        # Fixed: the bug applied a ReLU to the branch here, so F(x) >= 0
        # and the block could only add.
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Block2(nn.Module):
    """Meant to be a BasicBlock with option-B shortcuts; it has one bug.
    """

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, planes, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes),
            )
        # Fixed: the bug made a BN for the identity path here
        # (self.bn_identity).

    def forward(self, x):
        # Fixed: the identity is x itself, not a normalised x.
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Block3(nn.Module):
    """Meant to be a BasicBlock with option-B shortcuts; it has one bug.
    """

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        # Fixed: only conv1 has the stride (the bug gave it to conv2
        # too, halving the resolution twice).
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, planes, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Block4(nn.Module):
    """Meant to be a BasicBlock with option-B shortcuts; it has one bug.
    """

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        # Fixed: the bug had no projection, so x could not be added
        # where the shape changes.
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, planes, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)
