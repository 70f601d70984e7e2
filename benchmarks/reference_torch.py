"""Benchmark: the PyTorch reference U-Net (brain-segmentation-pytorch's architecture) on this CPU.

    pip install torch==2.13.0          # the CPU wheel; not a dependency of this project
    python benchmarks/reference_torch.py --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16

The architecture of Buda et al.'s reference (mateuszbuda/brain-segmentation-pytorch), written here
from its description: per level two 3x3 convolutions (no bias) each followed by batch norm and
ReLU, 2x2 max pooling, a bottleneck block, 2x2 stride-2 transposed convolutions up, skip
concatenation, a 1x1 convolution and a sigmoid. Trained with Adam on BCE + Dice, as speed.py
trains the Keras model, on one in-memory batch; steady state after warm-up. Prints JSON with the
keys speed.py uses (GFLOP/s against this CPU's float32 peak too), so the two compare line by line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

from unet_flops import add_shape_arguments, efficiency  # beside this script


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per figure (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    return parser.parse_args(argv)


def build_reference(torch, depth: int, base_filters: int, channels: int):
    nn = torch.nn

    def block(in_channels, out_channels):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [base_filters * 2**level for level in range(depth + 1)]
            self.encoders = nn.ModuleList(block(c, w) for c, w in zip([channels] + widths[:-2], widths[:-1]))
            self.pool = nn.MaxPool2d(2)
            self.bottleneck = block(widths[-2], widths[-1])
            self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
            self.decoders = nn.ModuleList(block(2 * widths[i], widths[i]) for i in range(depth))
            self.head = nn.Conv2d(widths[0], 1, 1)

        def forward(self, x):
            skips = []
            for encoder in self.encoders:
                x = encoder(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottleneck(x)
            for level in reversed(range(depth)):
                x = self.decoders[level](torch.cat([self.ups[level](x), skips[level]], dim=1))
            return torch.sigmoid(self.head(x))

    return UNet()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed; pip install torch==2.13.0", file=sys.stderr)
        return 2

    torch.manual_seed(0)
    model = build_reference(torch, args.depth, args.base_filters, args.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    shape = (args.batch_size, args.channels, args.image_size, args.image_size)
    images = torch.rand(shape)
    masks = (torch.rand((args.batch_size, 1, args.image_size, args.image_size)) > 0.9).float()

    def train_step():
        optimizer.zero_grad()
        predicted = model(images)
        bce = torch.nn.functional.binary_cross_entropy(predicted, masks)
        dice = 1 - (2 * (predicted * masks).sum() + 1) / (predicted.sum() + masks.sum() + 1)
        (bce + dice).backward()
        optimizer.step()

    def images_per_s(step) -> float:
        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return args.batch_size / statistics.median(times)

    model.train()
    train = images_per_s(train_step)
    model.eval()
    with torch.inference_mode():
        predict = images_per_s(lambda: model(images))
    result = {
        "depth": args.depth, "base_filters": args.base_filters, "image_size": args.image_size,
        "channels": args.channels, "batch_size": args.batch_size, "steps": args.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images_per_s": round(train, 2), "predict_images_per_s": round(predict, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    result.update(efficiency(result))
    result["machine"] = (f"{os.uname().machine}, {os.cpu_count()} CPUs, PyTorch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
