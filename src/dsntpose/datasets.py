"""The data sets a run config names: training, validation and test splits at the crop size.

The one place where ``RunConfig.data`` turns into :mod:`dsntpose.data` objects, used by
training, evaluation and the experiment scripts (no Lightning needed). Each data set is a pair
of functions here, ``<name>_splits(run, need_test)`` and ``<name>_test(run)``, and one entry of
:data:`dsntpose.families.DATASETS` (its joint sets, protocol and keys) that points at them;
:func:`build_datasets`, :func:`build_test_set` and :func:`build_split` go through that dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from dsntpose.config import RunConfig
from dsntpose.data import LSP, MPII
from dsntpose.data.common import PoseConcat, PoseDataset
from dsntpose.data.synthetic import Synthetic
from dsntpose.data.transforms import Augment
from dsntpose.families import DATASETS

__all__ = [
    "HOLDOUT_SEED",
    "build_datasets",
    "build_split",
    "build_test_set",
    "coco_splits",
    "coco_test",
    "holdout_picks",
    "lsp_splits",
    "lsp_test",
    "mixed_splits",
    "mixed_test",
    "mpii_splits",
    "mpii_test",
    "require_root",
    "synthetic_splits",
    "synthetic_test",
]

Splits = tuple[Dataset[dict[str, Any]], Dataset[dict[str, Any]], Dataset[dict[str, Any]] | None]

SPLITS = ("train", "val", "test")


def _augment_for(run: RunConfig) -> Augment | bool:
    """The training augmentation ``run.data`` describes (False when switched off)."""
    d = run.data
    if not d.augment:
        return False
    # The data section names each of Augment's fields (and validates them) under the same name.
    return Augment(**{f.name: getattr(d, f.name) for f in dataclasses.fields(Augment)})


def require_root(run: RunConfig) -> Path | None:
    """``data.root`` checked as its data set's spec says (a folder holding ``root_holds``, or
    a file), or ``FileNotFoundError`` saying what to download where (the spec's ``how``).
    None for a data set that reads no ``data.root`` (synthetic)."""
    d = run.data
    spec = DATASETS[d.dataset]
    if spec.root is None:
        return None
    how = spec.how
    if d.root is None:
        raise FileNotFoundError(f"data.root is not set for data.dataset {d.dataset!r}. {how}")
    root = Path(d.root).expanduser()
    if spec.root == "file":
        if not root.is_file():
            raise FileNotFoundError(f"data.root {root} is not a file. {how}")
        return root
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} does not exist. {how}")
    from dsntpose.data.download import UNVERIFIED

    marker = root / UNVERIFIED
    if marker.is_file():
        problem = " ".join(marker.read_text().split())[:300]
        raise FileNotFoundError(
            f"data.root {root} failed its checksum verification ({problem}); fetch it again. {how}"
        )
    for name in spec.root_holds:
        if not (root / name).exists():
            raise FileNotFoundError(f"data.root {root} has no {name}. {how}")
    return root


def _root(run: RunConfig) -> Path:
    """:func:`require_root` for a data set that reads ``data.root``."""
    root = require_root(run)
    assert root is not None, f"data.dataset {run.data.dataset!r} reads no data.root"
    return root


def _mpii_annotations(root: Path) -> Path:
    """The bearpaw training annotations in ``root`` (json or json.gz)."""
    for name in ("mpii_annotations.json", "mpii_annotations.json.gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"data.root {root} has no mpii_annotations.json(.gz); run `dsntpose data mpii --data.root {root}`"
    )


def build_datasets(run: RunConfig) -> tuple[Dataset[dict[str, Any]], Dataset[dict[str, Any]]]:
    """The training and validation sets ``run.data`` names, at ``run.model.input_size`` px.

    * ``synthetic``: generated figures (``data.synthetic_train`` / ``synthetic_val`` samples,
      different seeds), nothing to download.
    * ``lsp``: ``data.root`` holds ``joints.mat`` and ``images/``; train on images 1-1000,
      validate on 1001-2000 (the standard split, PCK@0.2 of the torso).
      With ``data.lspet_root`` the LSP-extended images join the training set.
    * ``mpii``: ``data.root`` holds ``mpii_annotations.json[.gz]`` (training people) and
      ``valid.h5`` (the standard 2958 validation people, with PCKh head sizes); the images are
      in ``data.image_root`` (default ``data.root/images``).

    With ``data.val_holdout = N`` the validation set is instead ``N`` training images held
    out by a fixed draw (:func:`holdout_picks`), unaugmented, and training uses the rest.

    Returns:
        ``(train, val)`` datasets of sample dicts (see :mod:`dsntpose.data.common`); only the
        training set augments. ``data.train_subset``/``val_subset`` are applied by the sampler.

    Raises:
        FileNotFoundError: the data root or a file in it is missing (the message says what to
            download and where to put it).
    """
    train, val, _ = _build_splits(run, need_test=False)
    return train, val


# The fixed draw of held-out validation images (data.val_holdout): the same for every run.
HOLDOUT_SEED = 20180123


def holdout_picks(sizes: Sequence[int], count: int) -> tuple[list[tuple[int, int]], ...]:
    """Split the samples of parts of ``sizes`` into ``(train, held_out)`` ``(part, index)``
    lists; ``count`` held out, drawn with a fixed seed, each list in data set order."""
    picks = [(p, i) for p, n in enumerate(sizes) for i in range(n)]
    if count >= len(picks):
        raise ValueError(
            f"data.val_holdout: {count} held out of {len(picks)} training images leaves none"
        )
    held = set(np.random.default_rng(HOLDOUT_SEED).permutation(len(picks))[:count].tolist())
    train = [pick for k, pick in enumerate(picks) if k not in held]
    return train, [pick for k, pick in enumerate(picks) if k in held]


def _build_splits(run: RunConfig, *, need_test: bool = True) -> Splits:
    """``(train, val, test)``: see :func:`build_datasets` and :func:`build_test_set`."""
    return DATASETS[run.data.dataset].splits(run, need_test)


def _finish(
    run: RunConfig,
    train_parts: list[PoseDataset],
    plain_parts: list[PoseDataset],
    test: Dataset[dict[str, Any]] | None,
) -> Splits:
    """The splits from the training parts (augmented, and the same unaugmented) and the test
    set, which is also the validation set unless ``data.val_holdout`` images of the training
    parts (a fixed draw) are held out for it."""
    if run.data.val_holdout:
        sizes = [len(part) for part in train_parts]
        train_picks, val_picks = holdout_picks(sizes, run.data.val_holdout)
        return PoseConcat(train_parts, train_picks), PoseConcat(plain_parts, val_picks), test
    train = train_parts[0] if len(train_parts) == 1 else PoseConcat(train_parts)
    assert test is not None
    return train, test, test


def synthetic_splits(run: RunConfig, need_test: bool) -> Splits:
    """Generated figures: ``data.synthetic_train`` / ``synthetic_val`` samples, different
    seeds; validation and test are the same figures."""
    d, size, seed, joints = run.data, run.model.input_size, run.train.seed, run.model.joints
    augment = _augment_for(run)
    train: list[PoseDataset] = [
        Synthetic(d.synthetic_train, size=size, joints=joints, augment=augment, seed=seed)
    ]
    plain: list[PoseDataset] = [Synthetic(d.synthetic_train, size=size, joints=joints, seed=seed)]
    return _finish(run, train, plain, synthetic_test(run))


def synthetic_test(run: RunConfig) -> Dataset[dict[str, Any]]:
    """The synthetic validation figures."""
    d, size = run.data, run.model.input_size
    return Synthetic(d.synthetic_val, size=size, joints=run.model.joints, seed=run.train.seed + 1)


def lsp_splits(run: RunConfig, need_test: bool) -> Splits:
    """LSP images 1-1000 (with LSP-extended's when ``data.lspet_root``) for training, 1001-2000
    for validation and test."""
    d, size, seed = run.data, run.model.input_size, run.train.seed
    augment = _augment_for(run)
    root = _root(run)
    train_parts: list[PoseDataset] = [LSP(root, "train", size=size, augment=augment, seed=seed)]
    plain_parts: list[PoseDataset] = [LSP(root, "train", size=size)]
    if d.lspet_root is not None:
        extended = _require_lspet(d.lspet_root)
        # a seed of its own, so that LSP image i and LSPET image i are augmented differently
        train_parts.append(
            LSP(extended, "all", size=size, augment=augment, seed=seed + 1, extended=True)
        )
        plain_parts.append(LSP(extended, "all", size=size, extended=True))
    test = LSP(root, "test", size=size) if need_test or not d.val_holdout else None
    return _finish(run, train_parts, plain_parts, test)


def lsp_test(run: RunConfig) -> Dataset[dict[str, Any]]:
    """LSP images 1001-2000."""
    return LSP(_root(run), "test", size=run.model.input_size)


def _mpii_images(run: RunConfig, root: Path) -> Path:
    """``data.image_root`` (default ``root/images``)."""
    d = run.data
    return Path(d.image_root).expanduser() if d.image_root else root / "images"


def mpii_splits(run: RunConfig, need_test: bool) -> Splits:
    """MPII's training people; its standard 2958 validation people for validation and test."""
    size, seed = run.model.input_size, run.train.seed
    augment = _augment_for(run)
    root = _root(run)
    image_root = _mpii_images(run, root)
    if not image_root.is_dir():
        raise FileNotFoundError(
            f"data.image_root {image_root} does not exist: unpack the MPII images "
            "(mpii_human_pose_v1.tar.gz from http://human-pose.mpi-inf.mpg.de/) there"
        )
    annotations = _mpii_annotations(root)
    train_parts: list[PoseDataset] = [
        MPII(annotations, image_root, "train", size=size, augment=augment, seed=seed)
    ]
    plain_parts: list[PoseDataset] = [MPII(annotations, image_root, "train", size=size)]
    test = MPII(root / "valid.h5", image_root, "all", size=size)
    return _finish(run, train_parts, plain_parts, test)


def mpii_test(run: RunConfig) -> Dataset[dict[str, Any]]:
    """MPII's standard validation people."""
    root = _root(run)
    return MPII(root / "valid.h5", _mpii_images(run, root), "all", size=run.model.input_size)


def coco_splits(run: RunConfig, need_test: bool) -> Splits:
    """The people of a COCO keypoints file (``data.root``; images in ``data.image_root``,
    default ``images/`` beside the file) in ``model.joints``: with ``data.val_holdout`` some
    are held out for validation, else validation and test are all of them, unaugmented."""
    augment = _augment_for(run)
    train: list[PoseDataset] = [_coco(run, augment=augment, seed=run.train.seed)]
    plain: list[PoseDataset] = [_coco(run)]
    test = _coco(run) if need_test or not run.data.val_holdout else None
    return _finish(run, train, plain, test)


def coco_test(run: RunConfig) -> Dataset[dict[str, Any]]:
    """The people of the COCO keypoints file, unaugmented."""
    return _coco(run)


def _coco(run: RunConfig, **options: Any) -> PoseDataset:
    """:class:`~dsntpose.data.coco.COCOKeypoints` on ``data.root`` in the joint set
    ``model.joints`` (the file's keypoint names must be that set's)."""
    from dsntpose.data.coco import COCOKeypoints

    ann = _root(run)
    d = run.data
    images = Path(d.image_root).expanduser() if d.image_root else ann.parent / "images"
    if not images.is_dir():
        raise FileNotFoundError(
            f"data.image_root {images} does not exist: it must be the folder the COCO file's "
            "file_name entries are relative to"
        )
    people = COCOKeypoints(ann, images, size=run.model.input_size, **options)
    if people.joint_set.name != run.model.joints:
        raise ValueError(
            f"data.root {ann}: its keypoints are {people.joint_set.name!r} "
            f"({len(people.joint_set.names)} joints), not model.joints {run.model.joints!r}"
        )
    return people


def build_test_set(run: RunConfig) -> Dataset[dict[str, Any]]:
    """The split that final numbers are reported on: LSP images 1001-2000, MPII's standard
    validation people, or the synthetic validation figures (whatever ``data.val_holdout``).
    Only the test files are needed (no training images, no LSP-extended)."""
    return DATASETS[run.data.dataset].test(run)  # type: ignore[no-any-return]


def mixed_splits(run: RunConfig, need_test: bool) -> Splits:
    """The splits of ``data.dataset: mixed`` (:func:`_build_mixed`)."""
    return _build_mixed(run, _augment_for(run), need_test=need_test)


def mixed_test(run: RunConfig) -> Dataset[dict[str, Any]]:
    """LSP images 1001-2000 in MPII's joints (:func:`_lsp_test_mixed`)."""
    return _lsp_test_mixed(_root(run), run.model.input_size)


def _lsp_test_mixed(root: Path, size: int) -> Dataset[dict[str, Any]]:
    """LSP images 1001-2000 in MPII's joints (by name: neck as upper_neck, no pelvis/thorax),
    annotation-box crops: the test split of ``data.dataset: mixed``."""
    from dsntpose.data.joints import MPII_JOINTS
    from dsntpose.data.mixed import MixedPeople

    return MixedPeople([("lsp", LSP(root, "test", size=size))], MPII_JOINTS, size=size)


def _build_mixed(
    run: RunConfig, augment: Augment | bool, *, need_test: bool
) -> tuple[Dataset[dict[str, Any]], Dataset[dict[str, Any]], Dataset[dict[str, Any]] | None]:
    """The splits of ``data.dataset: mixed`` (:mod:`dsntpose.data.mixed`): LSP 1-1000,
    LSP-extended (``data.lspet_root``) and the MPII training crops (``data.mpii_crops_root``)
    as one set in MPII's joints; ``data.val_holdout`` people held out (fixed draw) with the
    negatives of their own images (and every third COCO background) for validation."""
    from dsntpose.data.coco import COCOKeypoints
    from dsntpose.data.joints import MPII_JOINTS
    from dsntpose.data.mixed import (
        Framing,
        MixedPeople,
        coco_backgrounds,
        mpii_crop_other_people,
    )

    d, size, seed = run.data, run.model.input_size, run.train.seed
    root = _root(run)
    sources: list[tuple[str, Any]] = [("lsp", LSP(root, "train", size=size))]
    others: dict[str, list[np.ndarray]] = {}
    if d.lspet_root is not None:
        sources.append(
            ("lspet", LSP(_require_lspet(d.lspet_root), "all", size=size, extended=True))
        )
    if d.mpii_crops_root is not None:
        crops = Path(d.mpii_crops_root).expanduser()
        ann = crops / "person_keypoints_mpii_train.json"
        if not ann.is_file() or not (crops / "images").is_dir():
            raise FileNotFoundError(
                f"data.mpii_crops_root {crops} must hold person_keypoints_mpii_train.json and images/"
            )
        people = COCOKeypoints(ann, crops / "images", size=size, margin=0.2)
        boxes = mpii_crop_other_people(ann)
        others["mpii_crops"] = [boxes.get(int(i), np.zeros((0, 4))) for i in people.image_ids]
        sources.append(("mpii_crops", people))
    train_bg = val_bg = None
    if d.coco_root is not None:
        coco = Path(d.coco_root).expanduser()
        ann = coco / "annotations" / "person_keypoints_val2017.json"
        if not ann.is_file() or not (coco / "val2017").is_dir():
            raise FileNotFoundError(
                f"data.coco_root {coco} must hold annotations/person_keypoints_val2017.json and val2017/"
            )
        backgrounds = coco_backgrounds(ann, coco / "val2017")
        keep = [k % 3 != 2 for k in range(len(backgrounds.image_paths))]
        train_bg = _select(backgrounds, keep)
        val_bg = _select(backgrounds, [not k for k in keep])
    sizes = [len(source.joints) for _, source in sources]
    if d.val_holdout:
        train_picks, val_picks = holdout_picks(sizes, d.val_holdout)
    else:
        train_picks, val_picks = [(p, i) for p, n in enumerate(sizes) for i in range(n)], []
    train_picks = _weighted(train_picks, [name for name, _ in sources], d.mix_weights, seed)
    framing = Framing(
        d.whole_prob, d.loose_prob, d.loose_scale, d.shift, d.tight_prob, d.tight_scale
    )
    train = MixedPeople(
        sources,
        MPII_JOINTS,
        picks=train_picks,
        negatives=round(d.negatives * len(train_picks)),
        backgrounds=train_bg,
        other_people=others,
        size=size,
        augment=augment,
        framing=framing,
        seed=seed,
    )
    if not val_picks:  # nothing held out: validation is the test split
        lsp_test = _lsp_test_mixed(root, size)
        return train, lsp_test, lsp_test
    test = _lsp_test_mixed(root, size) if need_test else None
    val = MixedPeople(
        sources,
        MPII_JOINTS,
        picks=val_picks,
        negatives=round(d.negatives * len(val_picks)),
        backgrounds=val_bg,
        other_people=others,
        size=size,
        seed=seed + 1,
    )
    return train, val, test


def _select(images: Any, keep: Sequence[bool]) -> Any:
    """The :class:`~dsntpose.data.mixed.NegativeImages` of ``images`` where ``keep``."""
    from dsntpose.data.mixed import NegativeImages

    return NegativeImages(
        [p for p, k in zip(images.image_paths, keep) if k],
        [a for a, k in zip(images.avoid, keep) if k],
    )


def _weighted(
    picks: list[tuple[int, int]], names: list[str], weights: dict[str, float], seed: int
) -> list[tuple[int, int]]:
    """``picks`` with each source's people repeated ``weight`` times (default 1): the whole
    part of a weight repeats everyone, the fraction adds a fixed draw (seeded) of its people."""
    out: list[tuple[int, int]] = []
    for part, name in enumerate(names):
        mine = [pick for pick in picks if pick[0] == part]
        weight = weights.get(name, 1.0)
        whole, frac = int(weight), weight - int(weight)
        out += mine * whole
        extra = round(frac * len(mine))
        if extra:
            order = np.random.default_rng([HOLDOUT_SEED, seed, part]).permutation(len(mine))
            out += [mine[k] for k in sorted(order[:extra].tolist())]
    if not out:
        raise ValueError("data.mix_weights: every source has weight 0; nothing to train on")
    return out


def _require_lspet(folder: str) -> Path:
    """``data.lspet_root`` as a folder holding ``joints.mat`` and ``images/``."""
    root = Path(folder).expanduser()
    for name in ("joints.mat", "images"):
        if not (root / name).exists():
            raise FileNotFoundError(
                f"data.lspet_root {root} has no {name}: it must hold LSP-extended's joints.mat "
                "and images/ (im00001.jpg ...)"
            )
    return root


def build_split(run: RunConfig, split: str) -> Dataset[dict[str, Any]]:
    """One split of :func:`build_datasets` / :func:`build_test_set`: ``train``, ``val`` (what
    training validates on) or ``test`` (what final numbers are reported on)."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    if split == "test":
        return build_test_set(run)
    return build_datasets(run)[SPLITS.index(split)]
