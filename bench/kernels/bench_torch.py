"""PyTorch CPU reference timings for the fused-kernel benchmark (dev-only).

Mirrors crates/model/examples/bench_kernels.rs: same ops and shapes (MiniLM-like: batch 32 x
seq 180 x hidden 384, 12 heads, FFN 1536), forward and forward+backward
(`y.backward(torch.ones_like(y))`), best-of-N wall time in ms, 2 torch threads.

Run: python3 bench/kernels/bench_torch.py [reps]     (prints a markdown table; writes nothing)
"""

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
B, T, H, NH, FF = 32, 180, 384, 12, 1536


def best_ms(fn):
    fn()
    best = float("inf")
    for _ in range(REPS):
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best


def time_op(shape, op):
    x = torch.randn(*shape)

    def fwd():
        with torch.no_grad():
            op(x)

    def both():
        xv = x.clone().requires_grad_(True)
        y = op(xv)
        y.backward(torch.ones_like(y))
        return xv.grad

    return best_ms(fwd), best_ms(both)


def main():
    w = 1.0 + 0.1 * torch.randn(H)
    b = 0.1 * torch.randn(H)
    lens = [40 + (i * 37) % (T - 40) for i in range(B)]
    mask = torch.zeros(B, 1, 1, T)
    for i, l in enumerate(lens):
        mask[i, :, :, l:] = float("-inf")
    scale = 1.0 / 32 ** 0.5
    cases = [
        ("layer_norm [32,180,384]", (B, T, H),
         lambda x: torch.nn.functional.layer_norm(x, (H,), w, b, 1e-12)),
        ("softmax [32,12,180,180]", (B, NH, T, T), lambda x: torch.softmax(x, -1)),
        ("masked_softmax [32,12,180,180]", (B, NH, T, T),
         lambda x: torch.softmax(x * scale + mask, -1)),
        ("gelu [32,180,1536]", (B, T, FF), lambda x: torch.nn.functional.gelu(x)),
    ]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, best of {REPS}")
    print("| op | torch fwd ms | torch fwd+bwd ms |")
    print("|---|---|---|")
    for name, shape, op in cases:
        f, fb = time_op(shape, op)
        print(f"| {name} | {f:.1f} | {fb:.1f} |")


if __name__ == "__main__":
    main()
