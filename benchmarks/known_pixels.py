"""Inpainting with the known pixels pasted back into the result, against the network's values
there (what the paper's published outputs hold), on CBSD68 crops of the settings-choice set.

    python benchmarks/known_pixels.py strokes 3 96    # hole kind, images, crop side

One fit per image with the task's default (the problem picks its preset), scored both ways;
biharmonic on the same input; the last column: the fit's PSNR on the known pixels alone.
"""

import dataclasses
import sys
import time

import numpy as np

import dip
from dip.baselines import biharmonic
from dip.bench.choice import cases
from dip.metrics import psnr

kind, count, crop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for name, problem, observed, clean in cases("inpaint", count, crop, kind=kind):
    t = time.time()
    problem = dataclasses.replace(problem, paste_known=False)
    out = dip.run(problem, observed, device="cpu")
    known = problem.mask[:, :, None] if problem.mask.ndim == 2 else problem.mask
    known = np.broadcast_to(known, clean.shape).astype(bool)
    pasted = np.where(known, observed, out.image)
    r = [
        psnr(out.image, clean),
        psnr(pasted, clean),
        psnr(biharmonic(observed, problem), clean),
        -10 * np.log10(((out.image - clean)[known] ** 2).mean()),
    ]
    rows.append(r)
    scores = " ".join(f"{v:.2f}" for v in r)
    print(name, out.preset.name, scores, out.fit.steps_run, f"{time.time() - t:.0f}s", flush=True)
print("avg", " ".join(f"{v:.2f}" for v in np.mean(rows, 0)), " (dip, dip pasted, biharmonic, dip on known pixels)")
