"""Quality at equal wall-clock: MaxViT tiny generator vs a convolutional baseline, shapes 32 px.

    PYTHONPATH=. python benchmarks/quality_shapes.py --minutes 3 --seeds 3      # 18 min of training
    PYTHONPATH=. python benchmarks/quality_shapes.py --minutes 2 --seeds 1      # short version

Both generators train class-conditionally on ``maxvit_gan.data.ShapesDataset`` (32 px, 4
classes) with the same discriminator (the tiny preset's StyleGAN2-style D with projection),
the same recipe (batch 32, Adam lr 2e-4, betas (0, 0.99),
non-saturating loss, lazy R1 gamma 1 every 4 D steps, EMA of G with half-life 2 kimg and
ramp-up 0.1) and the same training wall-clock budget per run (evaluation time excluded).

Metric, "Shapes-FID": Frechet distance (float64) between Inception-free features, namely the
penultimate layer (128-d, before its ReLU) of a small CNN classifier trained on shapes
(deterministic; cached in benchmarks/out/), of N generated images (EMA generator, classes
balanced) and N real held-out images. Also the classifier's accuracy on the generated
images for the requested class (conditioning works = high). Lower FID / higher accuracy is
better. Both numbers use the same N for every point, so they are comparable across runs.

Writes benchmarks/out/quality_shapes.json, benchmarks/quality_shapes.png and a section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from maxvit_gan.data import ShapesDataset  # noqa: E402
from maxvit_gan.models.build import build_models  # noqa: E402
from maxvit_gan.models.config import ModelConfig  # noqa: E402
from maxvit_gan.training.losses import d_loss, g_loss  # noqa: E402

RES, NUM_CLASSES = 32, 4
BEGIN = "<!-- BEGIN benchmarks/quality_shapes.py (generated) -->"
END = "<!-- END benchmarks/quality_shapes.py -->"


# --------------------------------------------------------------------------- data


def image_bank(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n shapes images as float [-1, 1] (n, 3, 32, 32) and labels; cached on disk."""
    path = OUT / f"shapes{RES}_seed{seed}_n{n}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
        return d["x"].float() / 127.5 - 1, d["y"]
    ds = ShapesDataset(RES, n, NUM_CLASSES, seed=seed, conditional=True)
    xs, ys = zip(*(ds[i] for i in range(n)))
    x, y = torch.stack(xs), torch.stack(ys).long()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, path)
    return x.float() / 127.5 - 1, y


# --------------------------------------------------------------------------- feature network


class ShapesClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc = nn.Linear(128 * 16, 128)
        self.head = nn.Linear(128, NUM_CLASSES)

    def features(self, x):  # (B, 128), before the ReLU
        return self.fc(self.convs(x).flatten(1))

    def forward(self, x):
        return self.head(F.relu(self.features(x)))


def classifier() -> ShapesClassifier:
    """Trained once (seeded, 1 thread: deterministic) and cached in benchmarks/out/."""
    path = OUT / "shapes32_classifier.pt"
    net = ShapesClassifier()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    x, y = image_bank(seed=101, n=8000)
    xt, yt = image_bank(seed=102, n=1000)
    torch.manual_seed(0)
    net = ShapesClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    print(f"shapes classifier: held-out accuracy {acc:.4f}", flush=True)
    torch.save(net.state_dict(), path)
    (OUT / "shapes32_classifier.json").write_text(json.dumps({"heldout_accuracy": acc}))
    return net


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """FD between Gaussians fitted to two feature sets, in float64 (symmetric eigen route:
    tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)))."""
    f1, f2 = f1.double(), f2.double()
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    w, v = torch.linalg.eigh(s1)
    s1h = (v * w.clamp_min(0).sqrt()) @ v.T
    m = s1h @ s2 @ s1h
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_sqrt)


# --------------------------------------------------------------------------- baseline generator


class ResUp(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        y = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        return (self.skip(x) + y) * math.sqrt(0.5)


class ConvGenerator(nn.Module):
    """Residual upsampling convnet (BigGAN-style block without BatchNorm): z + class
    embedding -> 4x4x256 -> 8 (128) -> 16 (64) -> 32 (32) -> conv to RGB (not clamped)."""

    def __init__(self, z_dim=128, num_classes=NUM_CLASSES, widths=(256, 128, 64, 32)):
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(num_classes, z_dim)
        self.input = nn.Linear(2 * z_dim, 16 * widths[0])
        self.blocks = nn.ModuleList(ResUp(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.w0 = widths[0]

    def forward(self, z, labels):
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        x = self.input(torch.cat([z, self.embed(labels)], 1)).view(-1, self.w0, 4, 4)
        for b in self.blocks:
            x = b(x)
        return self.to_rgb(F.leaky_relu(x, 0.2))


def count_flops(G) -> float:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c:
        G(torch.randn(1, G.z_dim), torch.zeros(1, dtype=torch.long))
    return c.get_total_flops()


# --------------------------------------------------------------------------- training


def evaluate(G, clf, real_feats, n: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(10_000 + seed)
    z = torch.randn(n, G.z_dim, generator=g)
    labels = torch.arange(n) % NUM_CLASSES
    feats, pred = [], []
    with torch.no_grad():
        for zi, li in zip(z.split(100), labels.split(100)):
            img = G(zi, li).clamp(-1, 1)
            feats.append(clf.features(img))
            pred.append(clf(img).argmax(1))
    right = torch.cat(pred) == labels
    per_class = [right[labels == c].float().mean().item() for c in range(NUM_CLASSES)]
    return {"fid": frechet_distance(torch.cat(feats), real_feats), "acc": right.float().mean().item(), "per_class": per_class}


def train_run(model: str, seed: int, minutes: float, eval_every_s: float, n_eval: int, clf, real_feats, data) -> dict:
    torch.manual_seed(seed)
    _, D = build_models(ModelConfig(preset="tiny"), RES, NUM_CLASSES)
    if model == "maxvit":
        G, _ = build_models(ModelConfig(preset="tiny"), RES, NUM_CLASSES)
    else:
        G = ConvGenerator()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.99))
    r1_gamma, r1_every = 1.0, 4
    mb = r1_every / (r1_every + 1)  # lazy-regularization correction of D's Adam (StyleGAN2)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4 * mb, betas=(0.0, 0.99**mb))
    x_all, y_all = data
    batch, gen = 32, torch.Generator().manual_seed(seed)
    curve, step, nimg, train_s = [], 0, 0, 0.0
    next_eval = eval_every_s
    info = {
        "model": model,
        "seed": seed,
        "g_params_m": sum(p.numel() for p in G.parameters()) / 1e6,
        "g_mflops": count_flops(G) / 1e6,
    }
    print(f"[{model} seed {seed}] G {info['g_params_m']:.2f}M params, {info['g_mflops']:.0f} MFLOP/img", flush=True)
    while train_s < minutes * 60:
        t0 = time.perf_counter()
        idx = torch.randint(len(x_all), (batch,), generator=gen)
        reals, labels = x_all[idx], y_all[idx]
        z = torch.randn(batch, G.z_dim, generator=gen)
        fake_labels = torch.randint(NUM_CLASSES, (batch,), generator=gen)
        # D step (+ lazy R1)
        r1 = step % r1_every == 0
        reals_d = reals.detach().requires_grad_(r1)
        real_logits = D(reals_d, labels)
        with torch.no_grad():
            fake = G(z, fake_labels)
        loss = d_loss("nonsaturating", real_logits, D(fake, fake_labels))
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), reals_d, create_graph=True)
            loss = loss + grad.square().sum((1, 2, 3)).mean() * (r1_gamma / 2 * r1_every)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        # G step
        z = torch.randn(batch, G.z_dim, generator=gen)
        fake_labels = torch.randint(NUM_CLASSES, (batch,), generator=gen)
        loss_g = g_loss("nonsaturating", D(G(z, fake_labels), fake_labels))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # EMA: half-life 2 kimg, ramp-up 0.1 x images seen
        nimg += batch
        half_life = min(2000.0, 0.1 * nimg)
        beta = 0.5 ** (batch / max(half_life, 1e-8))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - beta)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        step += 1
        train_s += time.perf_counter() - t0
        if train_s >= next_eval or train_s >= minutes * 60:
            ev = evaluate(G_ema, clf, real_feats, n_eval, seed)
            curve.append({"train_s": train_s, "kimg": nimg / 1000, "step": step, **ev})
            print(f"[{model} seed {seed}] {train_s:6.0f} s {nimg / 1000:6.2f} kimg  Shapes-FID {ev['fid']:8.3f}  "
                  f"acc {ev['acc']:.3f}", flush=True)
            next_eval += eval_every_s
    info.update({"curve": curve, "final": curve[-1], "img_per_s": nimg / train_s})
    save_grid(G_ema, OUT / f"quality_{model}_seed{seed}.png", seed)
    return info


def save_grid(G, path: Path, seed: int) -> None:
    """8 x 8 EMA samples, one class per pair of rows."""
    from PIL import Image

    g = torch.Generator().manual_seed(20_000 + seed)
    labels = torch.arange(64) // 16 % NUM_CLASSES
    with torch.no_grad():
        img = G(torch.randn(64, G.z_dim, generator=g), labels).clamp(-1, 1)
    img = ((img + 1) * 127.5).round().to(torch.uint8).view(8, 8, 3, RES, RES).permute(0, 3, 1, 4, 2)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.reshape(8 * RES, 8 * RES, 3).numpy()).resize((8 * RES * 2,) * 2, Image.NEAREST).save(path)


# --------------------------------------------------------------------------- report


def plot(runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = {"maxvit": "tab:blue", "conv": "tab:orange"}
    for r in runs:
        t = [p["train_s"] / 60 for p in r["curve"]]
        axes[0].plot(t, [p["fid"] for p in r["curve"]], "o-", color=colors[r["model"]], alpha=0.8,
                     label=f"{r['model']} seed {r['seed']}")
        axes[1].plot(t, [p["acc"] for p in r["curve"]], "o-", color=colors[r["model"]], alpha=0.8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("Shapes-FID (lower is better)")
    axes[1].set_ylabel("classifier accuracy on samples (requested class)")
    for ax in axes:
        ax.set_xlabel("training wall-clock (min, CPU, 1 thread)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Shapes 32 px, class-conditional: MaxViT tiny G vs convolutional G, same D and recipe")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render(res: dict) -> str:
    L = [BEGIN, "", "## Quality at equal wall-clock: MaxViT vs convolutional generator (benchmarks/quality_shapes.py)", ""]
    a = res["args"]
    L += [
        f"- Command: `{res['command']}`; {a['seeds']} seed(s), {a['minutes']} min of training per run "
        f"(evaluation excluded), torch threads {a['threads']}, {res['date']}.",
        f"- Shapes-FID: float64 Frechet distance in the 128-d feature space of a small CNN trained on shapes "
        f"(held-out accuracy {res['classifier_heldout_accuracy']:.4f}), {a['n_eval']} EMA-generator samples "
        f"(classes balanced) vs {a['n_eval']} real held-out images. Accuracy: the classifier's agreement with the "
        "requested class. Real-vs-real Shapes-FID (two disjoint real sets of this size) = "
        f"{res['real_vs_real_fid']:.3f}: the floor set by the sample size.",
        "",
        "| model | G params (M) | G MFLOP/img | img/s trained | kimg seen | Shapes-FID (final) | accuracy (final) | best FID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        f = r["final"]
        L.append(
            f"| {r['model']} (seed {r['seed']}) | {r['g_params_m']:.2f} | {r['g_mflops']:.0f} | {r['img_per_s']:.1f} | "
            f"{f['kimg']:.1f} | {f['fid']:.3f} | {f['acc']:.3f} | {min(p['fid'] for p in r['curve']):.3f} |"
        )
    for m, s in res["summary"].items():
        L.append(f"| **{m} mean** | | | | | **{s['fid_mean']:.3f}** | **{s['acc_mean']:.3f}** | |")
    L += ["", "Curves: [quality_shapes.png](quality_shapes.png).", ""]
    if res.get("notes"):
        L += [res["notes"], ""]
    L += [END]
    return "\n".join(L) + "\n"


def write_md(res: dict, path: Path) -> None:
    block = render(res)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="training wall-clock per run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default="maxvit,conv")
    ap.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between evaluations")
    ap.add_argument("--n-eval", type=int, default=1000, help="samples (and real images) per Shapes-FID")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (keep it modest on shared machines)")
    ap.add_argument("--notes", default="", help="text added under the table in RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clf = classifier()
    real_x, _ = image_bank(seed=103, n=args.n_eval)
    real2_x, _ = image_bank(seed=104, n=args.n_eval)
    with torch.no_grad():
        real_feats, real2_feats = clf.features(real_x), clf.features(real2_x)
    data = image_bank(seed=0, n=20000)
    runs = []
    for seed in range(args.seeds):
        for model in args.models.split(","):
            runs.append(train_run(model, seed, args.minutes, args.eval_every, args.n_eval, clf, real_feats, data))
    summary = {}
    for model in args.models.split(","):
        fin = [r["final"] for r in runs if r["model"] == model]
        summary[model] = {"fid_mean": sum(f["fid"] for f in fin) / len(fin), "acc_mean": sum(f["acc"] for f in fin) / len(fin)}
    res = {
        "command": "PYTHONPATH=. python benchmarks/quality_shapes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "args": vars(args),
        "classifier_heldout_accuracy": json.loads((OUT / "shapes32_classifier.json").read_text())["heldout_accuracy"],
        "real_vs_real_fid": frechet_distance(real2_feats, real_feats),
        "runs": runs,
        "summary": summary,
        "notes": args.notes,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quality_shapes.json").write_text(json.dumps(res, indent=1))
    plot(runs, HERE / "quality_shapes.png")
    write_md(res, HERE / "RESULTS.md")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
