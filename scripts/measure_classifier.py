"""Cost of the action classifier on this CPU: one batch of 8 windows, one torch thread.

    python -m scripts.measure_classifier [--weights weights/action_classifier.pt]
    python -m scripts.measure_classifier --arch tcn --hidden 64 --layers 4 --bones --reaches

With --weights the checkpoint is timed as ActionClassifier runs it live; otherwise an untrained
network of the given shape (the cost does not depend on the weights). Prints the minimum (what
a quiet core gives), the 10th percentile and the median of --repeats calls: the machine is shared,
so the median includes other processes' load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from realtime.classifier import ActionClassifier, build_net, for_live_use
from realtime.features import FeatureSpec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights")
    p.add_argument("--arch", default="lstm")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--bones", action="store_true")
    p.add_argument("--reaches", action="store_true")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=500)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.weights:
        clf = ActionClassifier.load(args.weights)
        spec, model, name = clf.spec, clf.model, f"{args.weights} ({clf.checkpoint.arch})"
    else:
        spec = FeatureSpec(bones=args.bones, reaches=args.reaches)
        model = for_live_use(build_net(args.arch, spec, 7, args.hidden, args.layers).eval())
        inputs = "".join(f" + {part}" for part in ("bones", "reaches") if getattr(args, part))
        name = f"{args.arch} {args.hidden}x{args.layers}{inputs}"
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(args.batch, spec.window, spec.dim)).astype(np.float32))
    times = []
    with torch.inference_mode():
        for i in range(args.repeats + 50):
            t0 = time.perf_counter()
            torch.softmax(model(x), dim=1)
            if i >= 50:  # warm-up
                times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times)
    print(
        f"{name}: batch {args.batch}, input {spec.dim}: min {ms.min():.3f} ms, p10 {np.percentile(ms, 10):.3f} ms, "
        f"median {np.median(ms):.3f} ms over {args.repeats} calls"
    )


if __name__ == "__main__":
    main()
