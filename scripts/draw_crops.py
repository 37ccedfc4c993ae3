"""Draw data-set crops with their skeletons: the pictures in docs/images.

    .venv/bin/python scripts/draw_crops.py [--data ../shared/data] [--out docs/images]

Writes ``mpii_crops.png`` (the 5 MPII sample frames of ``mpii/sample_images`` with
``test_mpii.json``, cropped as for training: centre ``(x, y + 15 s)``, side ``200 * 1.25 s``)
and ``lsp_skeletons.png`` (LSP test images 1001, 1101, ..., cropped around their joints). Each
crop comes from the ``dsntpose.data`` data sets, so the pictures show exactly what a model sees;
the skeleton is drawn from the sample's normalised joints converted back to crop pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from dsntpose.data import LSP, MPII, JointSet
from dsntpose.ops import normalized_to_pixel
from dsntpose.viz import draw_skeleton, save_image

REPO = Path(__file__).resolve().parents[1]


def crop_with_skeleton(sample: dict[str, Any], joint_set: JointSet) -> np.ndarray:
    """``(S, S, 3)`` uint8 RGB crop of a sample with its labelled joints drawn."""
    image = sample["image"].numpy()
    size = image.shape[-1]
    crop = np.ascontiguousarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8))
    joints_px = normalized_to_pixel(sample["joints"].numpy().astype(np.float64), (size, size))
    return draw_skeleton(crop, joints_px, joint_set, mask=sample["mask"].numpy())


def grid(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Tiles of one size in rows of ``columns``, separated by white gaps."""
    size = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[
            r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size
        ] = tile
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--size", type=int, default=176, help="MPII crop side in px")
    parser.add_argument("--lsp-size", type=int, default=136, help="LSP crop side in px")
    args = parser.parse_args()

    samples = args.data / "mpii" / "sample_images"
    mpii = MPII(samples / "test_mpii.json", samples, size=args.size)
    tiles = [crop_with_skeleton(mpii[i], mpii.joint_set) for i in range(len(mpii))]
    print("wrote", save_image(grid(tiles, columns=len(tiles)), args.out / "mpii_crops.png"))

    lsp = LSP(args.data / "lsp", "test", size=args.lsp_size)  # LSP images are ~100 x 170 px
    tiles = [crop_with_skeleton(lsp[i], lsp.joint_set) for i in range(0, 1000, 100)]
    print("wrote", save_image(grid(tiles, columns=5), args.out / "lsp_skeletons.png"))


if __name__ == "__main__":
    main()
