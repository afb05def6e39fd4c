# Exercise 1, The basic residual block: the solution's code cells.

class BasicBlock(nn.Module):
    """y = ReLU(F(x) + shortcut(x)), with F = conv3x3-BN-ReLU-conv3x3-BN
    (He et al. 2015, Fig. 2).
    """

    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            # The shape changes, so x cannot be added as it is: project
            # it with a strided 1x1 convolution.
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

    def zero_init_last(self):
        """Start as an identity: with the last BN's scale at zero the
        branch F(x) outputs zero.
        """
        nn.init.zeros_(self.bn2.weight)


def input_gradient(block, x, grad_output):
    """dL/dx for y = block(x) and dL/dy = grad_output, as
    (identity_term, branch_term).
    """
    x = x.detach().requires_grad_(True)
    branch = block.bn2(
        block.conv2(block.relu(block.bn1(block.conv1(x))))
    )
    y = torch.relu(branch + x)
    # the final ReLU passes the gradient only where y > 0
    upstream = grad_output * (y > 0)
    # d(x)/dx is the identity: the sum hands `upstream` to x unchanged
    identity_term = upstream
    (branch_term,) = torch.autograd.grad(branch, x, upstream)
    return identity_term, branch_term
