"""Summarizes benches/run_peers.sh's JSON lines: per workload and
implementation the median over rounds of the per-round medians, and the
ratio ours / peer (per round, since rounds are interleaved, then the median
of those ratios). A ratio below 1 means ours is faster."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = sys.argv[2] if len(sys.argv) > 2 else "?"
# jax: matmul precision matched to ours (float32); jax_default: JAX's
# default precision (TF32 on recent GPUs), see benches/gpu/jax_gpu.py;
# ours_tf32: ours with JLC_CUDA_TF32=1, compared with jax_default.
IMPLS = ("ours", "ours_tf32", "jax", "jax_default", "torch")
PAIRS = (("ours", "jax"), ("ours", "jax_default"), ("ours", "torch"), ("ours_tf32", "jax_default"))
by = defaultdict(dict)  # (workload, impl) -> round -> row
for r in rows:
    by[(r["workload"], r["impl"])][r["round"]] = r

print(f"# {machine}")
for w in sorted({r["workload"] for r in rows}):
    print(f"\n## {w}")
    print(f"{'impl':<11} {'step ms (per round)':<32} {'median':>8} {'compile ms':>11} {'GB/s':>6}")
    for impl in IMPLS:
        rs = by.get((w, impl))
        if not rs:
            continue
        steps = [rs[k]["step_ms"] for k in sorted(rs)]
        comp = [rs[k]["compile_ms"] for k in sorted(rs) if "compile_ms" in rs[k]]
        gbs = [rs[k]["GB/s"] for k in sorted(rs) if "GB/s" in rs[k]]
        print(f"{impl:<11} {', '.join(f'{s:.3f}' for s in steps):<32} {statistics.median(steps):>8.3f} "
              f"{(f'{statistics.median(comp):.0f}' if comp else '-'):>11} {(f'{statistics.median(gbs):.2f}' if gbs else '-'):>6}")
    for mine, impl in PAIRS:
        ours, rs = by.get((w, mine), {}), by.get((w, impl), {})
        common = sorted(set(ours) & set(rs))
        if not common:
            continue
        ratios = [ours[k]["step_ms"] / rs[k]["step_ms"] for k in common]
        line = f"{mine}/{impl} step: {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}x)"
        cr = [ours[k]["compile_ms"] / rs[k]["compile_ms"] for k in common if "compile_ms" in rs[k]]
        if cr:
            line += f"; compile: median {statistics.median(cr):.3f}x"
        print(line)
    ours = by.get((w, "ours"), {})
    share = [ours[k]["of_copy_bandwidth"] for k in sorted(ours) if "of_copy_bandwidth" in ours[k]]
    if share:
        print(f"ours: {', '.join(f'{x:.2f}' for x in share)} of the copy bandwidth measured in the same process "
              f"(median {statistics.median(share):.2f})")
