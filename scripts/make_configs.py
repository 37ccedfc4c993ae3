"""Write the EfficientNet-Lite recipes in configs/: LSP + LSPET at every output stride with
every head (CPU-sized, the shipped model's recipe), and the same backbone on MPII (GPU-sized).

    python scripts/make_configs.py      # rewrites configs/{lsp,mpii}_efficientnet_lite0_*.yaml

The shipped model's recipe is ``lsp_efficientnet_lite0_s16_dsnt_js.yaml``; the others change
only the stride and the head (heatmap matching gets no regulariser; FC keeps none, as the
paper's baseline).
"""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "dsntpose" / "configs"
HEADS = {"dsnt_js": ("dsnt", "js"), "heatmap": ("heatmap", "none"), "fc": ("fc", "none")}
CROP = {32: 160, 16: 160, 8: 160}


def lsp(stride: int, head: str, regularizer: str, name: str) -> dict:
    return {
        "model": {
            "backbone": "efficientnet_lite0",
            "output_stride": stride,
            "head": head,
            "activation": "softmax",
            "joints": "lsp",
            "weights": "imagenet",
            "input_size": CROP[stride],
        },
        "loss": {"regularizer": regularizer, "reg_weight": 1.0, "sigma": 1.0, "heatmap_sigma": 1.0},
        "data": {
            "dataset": "lsp",
            "root": "data/lsp",
            "lspet_root": "data/lspet",
            "val_holdout": 500,
            "augment": True,
            "batch_size": 16,
            "num_workers": 0,
        },
        "optim": {
            "optimizer": "adam",
            "lr": 1.0e-3,
            "schedule": "cosine",
            "warmup_steps": 200,
            "min_lr_ratio": 0.01,
            "backbone_lr_ratio": 1.0,
        },
        "train": {
            "epochs": 20,
            "precision": "32-true",
            "accelerator": "cpu",
            "devices": 1,
            "out_dir": f"runs/{name}",
            "log_every": 20,
            "vis_every": 5,
            "ckpt_every": 100,
            "channels_last": True,
        },
    }


def mpii(stride: int, name: str) -> dict:
    run = lsp(stride, "dsnt", "js", name)
    run["model"].update({"joints": "mpii", "input_size": 256})
    run["data"] = {
        "dataset": "mpii",
        "root": "data/mpii",
        "image_root": None,
        "augment": True,
        "batch_size": 32,
        "num_workers": 8,
    }
    run["train"].update(
        {"epochs": 120, "precision": "auto", "accelerator": "auto", "devices": "auto",
         "log_every": 50, "ckpt_every": 500, "channels_last": True}
    )  # fmt: skip
    return run


def main() -> None:
    for stride in (32, 16, 8):
        for label, (head, reg) in HEADS.items():
            name = f"lsp_efficientnet_lite0_s{stride}_{label}"
            header = (
                f"# LSP + LSP-extended, EfficientNet-Lite0 from ImageNet weights at output stride "
                f"{stride} ({CROP[stride]} px crops, {CROP[stride] // stride} px maps), {head} head"
                f"{' + JS' if reg == 'js' else ''}.\n# Written by scripts/make_configs.py. Trains "
                "on LSP 1-1000 + LSPET less 500 held-out images (validation);\n# report on LSP "
                "1001-2000: `dsntpose eval --checkpoint RUN/last.ckpt --split test --flip`.\n"
            )
            text = header + yaml.safe_dump(lsp(stride, head, reg, name), sort_keys=False)
            (CONFIGS / f"{name}.yaml").write_text(text)
    for stride in (16, 8):
        name = f"mpii_efficientnet_lite0_s{stride}_dsnt_js"
        header = (
            f"# MPII, EfficientNet-Lite0 from ImageNet weights, output stride {stride} (256 px "
            f"crops, {256 // stride} px maps), DSNT + JS,\n# Adam with a cosine schedule, 120 "
            "epochs: for a GPU with the MPII images (`dsntpose data mpii`).\n# Written by "
            "scripts/make_configs.py.\n"
        )
        (CONFIGS / f"{name}.yaml").write_text(
            header + yaml.safe_dump(mpii(stride, name), sort_keys=False)
        )


if __name__ == "__main__":
    main()
