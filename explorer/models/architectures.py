"""Architectures of the zoo that torchvision does not have: the bundled digits CNN and the
paper's (X-)Fixup-ResNet-50, laid out so that the released checkpoints' keys load as they are.
(X-AlexNet and X-VGG16 are torchvision's layouts without biases: see ``zoo._torchvision_build``.)"""
from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """conv5-ReLU-maxpool x2, linear-ReLU, linear: 28x28 grayscale -> 10 logits."""

    def __init__(self, bias: bool = True, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64, bias=bias), nn.ReLU(),
            nn.Linear(64, classes, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class FixupBottleneck(nn.Module):
    """Fixup's bottleneck (Zhang et al. 2019): no batch norm; scalar offsets around each conv
    and a scalar multiplier before the residual sum. The X version has neither."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, bias_free: bool):
        super().__init__()
        self.bias_free = bias_free
        self.conv1 = _conv(cin, planes, 1)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.relu = nn.ReLU()
        self.downsample = (_conv(cin, planes * 4, 1, stride)
                           if stride != 1 or cin != planes * 4 else None)
        if not bias_free:
            for name in ("bias1a", "bias1b", "bias2a", "bias2b", "bias3a", "bias3b"):
                setattr(self, name, nn.Parameter(torch.zeros(1)))
            self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias_free:
            out = self.relu(self.conv1(x))
            out = self.relu(self.conv2(out))
            out = self.conv3(out)
            skip = x if self.downsample is None else self.downsample(x)
        else:
            out = self.relu(self.conv1(x + self.bias1a) + self.bias1b)
            out = self.relu(self.conv2(out + self.bias2a) + self.bias2b)
            out = self.conv3(out + self.bias3a) * self.scale + self.bias3b
            skip = x if self.downsample is None else self.downsample(x + self.bias1a)
        return self.relu(out + skip)


class FixupResNet50(nn.Module):
    def __init__(self, bias_free: bool = False, classes: int = 1000):
        super().__init__()
        self.bias_free = bias_free
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, layers = 64, []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            seq = []
            for b in range(blocks):
                seq.append(FixupBottleneck(cin, planes, stride if b == 0 else 1, bias_free))
                cin = planes * 4
            layers.append(nn.Sequential(*seq))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes, bias=not bias_free)
        if not bias_free:
            self.bias1 = nn.Parameter(torch.zeros(1))
            self.bias2 = nn.Parameter(torch.zeros(1))
        self._init_fixup()

    def _init_fixup(self) -> None:
        # Fixup initialisation: residual branches scaled by L^(-1/4), last conv and fc at zero.
        # With zero last convs a random network is the identity on each block, so give the last
        # convs small random weights: an untrained model should still produce varied maps.
        depth = 16
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, FixupBottleneck):
                    for conv in (m.conv1, m.conv2):
                        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                        conv.weight.mul_(depth ** -0.25)
                    nn.init.normal_(m.conv3.weight, std=1e-3)
            nn.init.normal_(self.fc.weight, std=1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.relu(x if self.bias_free else x + self.bias1)
        x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x if self.bias_free else x + self.bias2)


def fixup_resnet50(bias_free: bool = False) -> nn.Module:
    return FixupResNet50(bias_free=bias_free)
