"""A hard 0/1 mask in front of a torchvision ResNet-18: python examples/own_model.py FOLDER [STEPS] [SIZE]"""
import sys

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from masklab import AreaConstraint, MaskGate


class MaskedResNet(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
                                       nn.Conv2d(16, 1, 3, padding=1))         # one logit per pixel
        nn.init.constant_(self.attention[-1].bias, 2.0)                         # gates start open
        self.gate = MaskGate("hard_concrete")                                   # exactly 0/1 forward
        self.backbone = torchvision.models.resnet18(weights=None, num_classes=classes)  # or weights="DEFAULT"

    def forward(self, x):
        logits = self.attention(x)
        mask = self.gate(logits)
        return self.backbone(x * mask), mask, self.gate.area(logits, mask)


folder, steps, size = sys.argv[1], int((sys.argv[2:] or [2000])[0]), int((sys.argv[3:] or [96])[0])
tf = torchvision.transforms.Compose([torchvision.transforms.Resize((size, size)), torchvision.transforms.ToTensor()])
data = torchvision.datasets.ImageFolder(folder, transform=tf)                  # FOLDER/<class>/<image>
loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, drop_last=True)
model = MaskedResNet(len(data.classes))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
constraint = AreaConstraint(target=0.3, steps=steps)                           # annealed from 1.0 to 30%
step = 0
while step < steps:
    for x, y in loader:
        step += 1
        logits, mask, area = model(x)
        loss = F.cross_entropy(logits, y) + constraint(area, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        constraint.update()                                                     # dual ascent on the area
        if step % 100 == 0 or step == steps:
            print(f"step {step}: loss {loss.item():.3f}, mask area {mask.mean().item():.3f}, "
                  f"target {constraint.target(step):.3f}")
        if step == steps:
            break
