"""The mixed whole-photo training set: joints mapped by name, framing, visibility, negatives;
the presence/visibility heads, their loss, fine-tuning across joint sets, and AUROC."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from dsntpose.checkpoint import save_model
from dsntpose.config import DataConfig, LossConfig, ModelConfig, RunConfig
from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, joint_map
from dsntpose.data.mixed import Framing, MixedPeople, NegativeImages, draw_negative, people_boxes
from dsntpose.evaluate import auroc
from dsntpose.heads import PresenceHead, presence_loss
from dsntpose.model import build_model
from dsntpose.training import load_initial_weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_joint_map_lsp_to_mpii_by_name() -> None:
    mapping = joint_map(LSP_JOINTS, MPII_JOINTS)
    assert len(mapping) == 16
    for j, name in enumerate(MPII_JOINTS.names):
        if name in ("pelvis", "thorax"):
            assert mapping[j] == -1
        elif name == "upper_neck":
            assert LSP_JOINTS.names[mapping[j]] == "neck"
        else:
            assert LSP_JOINTS.names[mapping[j]] == name
    back = joint_map(MPII_JOINTS, LSP_JOINTS)
    assert MPII_JOINTS.names[back[LSP_JOINTS.index("neck")]] == "upper_neck"


def _blob_source(tmp_path: Path, num: int = 3) -> SimpleNamespace:
    """LSP-joint people on rendered images: joint j is a bright blob whose brightness encodes j,
    so a crop shows where each joint went."""
    rng = np.random.default_rng(1)
    paths, joints = [], []
    for i in range(num):
        image = np.zeros((120, 160, 3), np.uint8)
        points = rng.uniform([50, 30], [110, 90], size=(14, 2))
        for j, (x, y) in enumerate(points):
            cv2.circle(image, (round(x), round(y)), 2, (40 + 15 * j,) * 3, -1)
            points[j] = (round(x), round(y))
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
        joints.append(points)
    joints_arr = np.array(joints, dtype=np.float64)
    missing = np.zeros((num, 14), bool)
    visible = np.ones((num, 14), bool)
    visible[:, LSP_JOINTS.index("l_wrist")] = False  # labelled occluded
    low, high = joints_arr.min(1), joints_arr.max(1)
    return SimpleNamespace(
        joint_set=LSP_JOINTS,
        image_paths=paths,
        joints=joints_arr,
        missing=missing,
        visible=visible,
        centers=(low + high) / 2,
        sides=1.4 * (high - low).max(1),
        torso_sizes=np.full(num, 30.0),
    )


@pytest.mark.parametrize(
    "framing",
    [
        None,
        Framing(whole_prob=1.0),
        Framing(loose_prob=1.0, loose_scale=1.0, shift=0.2),
        Framing(tight_prob=1.0, tight_scale=1.0),
    ],
)
def test_mapped_joints_land_on_their_rendered_blobs(
    tmp_path: Path, framing: Framing | None
) -> None:
    source = _blob_source(tmp_path)
    data = MixedPeople(
        [("lsp", source)], MPII_JOINTS, size=96, augment=True, framing=framing, seed=3
    )
    mapping = joint_map(LSP_JOINTS, MPII_JOINTS)
    for epoch in range(3):
        data.set_epoch(epoch)
        for k in range(len(data)):
            sample = data[k]
            image = sample["image"].numpy()[0]
            inverse = sample["inverse"].numpy()
            for j, src in enumerate(mapping):
                if src < 0:
                    assert sample["mask"][j] == 0 and sample["joints_missing"][j]
                    assert sample["visible_mask"][j] == 0
                    continue
                assert sample["visible_mask"][j] == 1
                if sample["mask"][j] == 0:
                    assert sample["visible"][j] == 0  # out of the crop: not in view
                    continue
                x, y = ((sample["joints"][j].numpy() + 1) * 96 - 1) / 2
                # the crop is brightest near the joint's blob (the joint moved with the image)
                xi, yi = round(x), round(y)
                patch = image[max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2]
                assert patch.max() > 0.08
                back = inverse[:, :2] @ np.array([x, y]) + inverse[:, 2]
                assert np.allclose(back, sample["joints_image"][j].numpy(), atol=1e-6)
                # the occluded left wrist is the mirrored person's right wrist
                flipped = data._params(k)[1].flip
                occluded = MPII_JOINTS.names[j] == ("r_wrist" if flipped else "l_wrist")
                assert sample["visible"][j] == (0.0 if occluded else 1.0)


def test_flip_moves_visibility_with_the_joints(tmp_path: Path) -> None:
    source = _blob_source(tmp_path, num=1)
    data = MixedPeople([("lsp", source)], MPII_JOINTS, size=96, augment=True, seed=0)
    l_wrist, r_wrist = MPII_JOINTS.index("l_wrist"), MPII_JOINTS.index("r_wrist")
    seen = set()
    for epoch in range(12):
        data.set_epoch(epoch)
        flipped = data._params(0)[1].flip
        sample = data[0]
        if sample["mask"][l_wrist] and sample["mask"][r_wrist]:
            # the occluded left wrist is the mirrored person's right wrist
            assert sample["visible"][r_wrist if flipped else l_wrist] == 0
            assert sample["visible"][l_wrist if flipped else r_wrist] == 1
            seen.add(flipped)
    assert seen == {True, False}


def test_negatives_avoid_people_and_have_no_targets(tmp_path: Path) -> None:
    source = _blob_source(tmp_path)
    data = MixedPeople([("lsp", source)], MPII_JOINTS, size=64, negatives=8, seed=0)
    assert len(data) == 3 + 8 and data.source_of(3) == "negative" and data.source_of(0) == "lsp"
    for k in range(3, len(data)):
        sample = data[k]
        assert sample["presence"] == 0.0 and sample["presence_mask"] == 1.0
        assert sample["mask"].sum() == 0 and sample["visible"].sum() == 0
        assert sample["visible_mask"].sum() == 16 and sample["joints_missing"].all()
        # the square, mapped back to the image, does not reach any joint blob
        corners = np.array([[-0.5, -0.5], [63.5, 63.5]])
        inverse = sample["inverse"].numpy()
        (x0, y0), (x1, y1) = corners @ inverse[:, :2].T + inverse[:, 2]
        for person in source.joints:
            inside = (
                (person[:, 0] > x0)
                & (person[:, 0] < x1)
                & (person[:, 1] > y0)
                & (person[:, 1] < y1)
            )
            # some image of the three holds the square; none of that image's joints is in it
            if sample["image"].numpy().max() > 0.15:
                continue
            assert not inside.all()
    assert data[0]["presence"] == 1.0


def test_draw_negative_never_overlaps_and_gives_up_on_full_images() -> None:
    rng = np.random.default_rng(0)
    avoid = np.array([[40.0, 40.0, 60.0, 60.0]])
    for _ in range(50):
        found = draw_negative(rng, (100, 100), avoid)
        assert found is not None
        (cx, cy), side = found
        half = side / 2
        assert side >= 32 and not (
            cx - half < 60 and 40 < cx + half and cy - half < 60 and 40 < cy + half
        )
    assert draw_negative(rng, (100, 100), np.array([[-10.0, -10.0, 110.0, 110.0]])) is None
    assert draw_negative(rng, (20, 100), np.zeros((0, 4))) is None  # too small for 32 px


def test_background_images_and_people_boxes(tmp_path: Path) -> None:
    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), np.full((80, 80, 3), 200, np.uint8))
    source = _blob_source(tmp_path, num=1)
    data = MixedPeople(
        [("lsp", source)],
        MPII_JOINTS,
        size=32,
        negatives=4,
        backgrounds=NegativeImages([str(path)], [np.zeros((0, 4))]),
    )
    assert all(data[k]["presence"] == 0.0 for k in range(1, 5))
    boxes = people_boxes(np.array([[[10.0, 10.0], [20.0, 30.0]]]), np.array([[False, False]]))
    assert boxes.shape == (1, 4) and boxes[0, 0] < 10 and boxes[0, 3] > 30
    assert people_boxes(np.zeros((1, 2, 2)), np.ones((1, 2), bool)).shape == (0, 4)


def test_framing_and_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="whole_prob"):
        Framing(whole_prob=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        Framing(whole_prob=0.6, loose_prob=0.6)
    with pytest.raises(ValueError, match="tight_prob"):
        Framing(loose_prob=0.6, tight_prob=0.6)
    with pytest.raises(ValueError, match="tight_scale"):
        Framing(tight_scale=-1.0)
    with pytest.raises(
        ValueError, match=r"data\.whole_prob \+ data\.loose_prob \+ data\.tight_prob"
    ):
        DataConfig(dataset="mixed", whole_prob=0.5, tight_prob=0.6)
    with pytest.raises(ValueError, match=r"data\.tight_prob: needs data\.dataset 'mixed'"):
        DataConfig(dataset="lsp", tight_prob=0.1)
    with pytest.raises(ValueError, match=r"data\.negatives: needs data\.dataset 'mixed'"):
        DataConfig(dataset="lsp", negatives=0.1)
    with pytest.raises(ValueError, match=r"data\.mix_weights"):
        DataConfig(dataset="mixed", mix_weights={"coco": 1.0})
    with pytest.raises(ValueError, match=r"model\.presence"):
        ModelConfig(backbone="hourglass", presence=True)
    with pytest.raises(ValueError, match=r"model\.joints"):
        RunConfig.from_dict({"data": {"dataset": "mixed"}, "model": {"joints": "lsp"}})


def test_presence_head_and_loss() -> None:
    torch.manual_seed(0)
    head = PresenceHead(8, 3)
    features = torch.randn(2, 8, 5, 5)
    probs = torch.softmax(torch.randn(2, 3, 25), -1).view(2, 3, 5, 5)
    presence, visibility = head(features, probs)
    assert presence.shape == (2,) and visibility.shape == (2, 3)
    # a joint's visibility reads the features under its own map
    one_hot = torch.zeros(2, 3, 5, 5)
    one_hot[:, :, 2, 3] = 1
    _, vis = head(features, one_hot)
    expected = (features[:, :, 2, 3][:, None, :] * head.visibility_weight).sum(
        -1
    ) + head.visibility_bias
    assert torch.allclose(vis, expected, atol=1e-6)
    with pytest.raises(ValueError, match="PresenceHead"):
        head(features, probs[:, :2])
    model = build_model(
        ModelConfig(backbone="resnet18", output_stride=32, input_size=64, presence=True)
    )
    out = model(torch.rand(2, 3, 64, 64))
    assert (
        out.presence is not None and out.presence.shape == (2,) and out.visibility.shape == (2, 16)
    )
    batch = {
        "presence": torch.tensor([1.0, 0.0]),
        "presence_mask": torch.tensor([1.0, 1.0]),
        "visible": torch.zeros(2, 16),
        "visible_mask": torch.zeros(2, 16),
    }
    cfg = LossConfig(presence_weight=1.0, visibility_weight=1.0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.presence, batch["presence"])
    assert torch.allclose(presence_loss(out, batch, cfg), expected)
    mask = torch.zeros(2, 16)
    coords_only = model.loss(out, torch.zeros(2, 16, 2), mask, cfg)
    both = model.loss(out, torch.zeros(2, 16, 2), mask, cfg, batch)
    assert torch.allclose(both - coords_only, expected)
    both.backward()
    assert model.presence.presence.weight.grad is not None


def test_fine_tune_from_an_lsp_model_carries_joints_by_name(tmp_path: Path) -> None:
    lsp_cfg = ModelConfig(backbone="resnet18", output_stride=32, input_size=64, joints="lsp")
    lsp_model = build_model(lsp_cfg)
    path = tmp_path / "lsp.pt"
    save_model(lsp_model, path, RunConfig(model=lsp_cfg, data=DataConfig(dataset="lsp")).to_dict())
    cfg = ModelConfig(
        backbone="resnet18", output_stride=32, input_size=64, joints="mpii", presence=True
    )
    model = build_model(cfg)
    fresh_pelvis = model.head.conv.weight[MPII_JOINTS.index("pelvis")].clone()
    load_initial_weights(model, cfg, path)
    trained = lsp_model.head.conv.weight
    got = model.head.conv.weight
    assert torch.equal(got[MPII_JOINTS.index("upper_neck")], trained[LSP_JOINTS.index("neck")])
    assert torch.equal(got[MPII_JOINTS.index("l_wrist")], trained[LSP_JOINTS.index("l_wrist")])
    assert torch.equal(got[MPII_JOINTS.index("pelvis")], fresh_pelvis)
    for key, value in lsp_model.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # ties on purpose
    labels = rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(scores, labels) == pytest.approx(pairs)
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="labels"):
        auroc([0.1, 0.2], [1, 2])


@pytest.mark.skipif(not (SHARED / "mpii_train_crops").is_dir(), reason="../shared/data is absent")
def test_the_real_mixed_set_builds_in_mpii_joints() -> None:
    from dsntpose.datasets import build_datasets

    run = RunConfig.from_dict(
        {
            "model": {"backbone": "efficientnet_lite0", "output_stride": 16, "input_size": 96},
            "data": {
                "dataset": "mixed",
                "root": str(SHARED / "lsp"),
                "lspet_root": str(SHARED / "lspet"),
                "mpii_crops_root": str(SHARED / "mpii_train_crops"),
                "coco_root": str(SHARED / "coco_mini"),
                "negatives": 0.1,
                "val_holdout": 100,
                "mix_weights": {"lspet": 0.5},
            },
        }
    )
    train, val = build_datasets(run)
    names = [train.names[s] for s, _ in train.picks]
    assert names.count("lsp") + names.count("mpii_crops") + names.count("lspet") == len(train.picks)
    assert abs(names.count("lspet") - 4500) < 100 and names.count("mpii_crops") > 2000
    assert len(val) == 100 + 10
    crop = train[names.index("mpii_crops")]
    assert crop["mask"][MPII_JOINTS.index("pelvis")] in (0.0, 1.0)
    lsp = train[0]
    assert lsp["mask"][MPII_JOINTS.index("pelvis")] == 0 and lsp["presence"] == 1.0


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.jpg", "images/../../x.jpg", ""])
def test_image_names_from_data_files_stay_inside_the_root(tmp_path: Path, name: str) -> None:
    from dsntpose.data.coco import COCOKeypoints
    from dsntpose.data.common import confined

    with pytest.raises(ValueError, match="not a path inside"):
        confined(tmp_path, name, "ann.json")
    assert confined(tmp_path, "a/b.jpg", "ann.json") == tmp_path / "a" / "b.jpg"
    coco = {
        "images": [{"id": 1, "file_name": name, "width": 10, "height": 10}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "keypoints": [5, 5, 2] * 17,
                "bbox": [0, 0, 9, 9],
            }
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"j{k}" for k in range(17)]}],
    }
    with pytest.raises(ValueError, match="not a path inside"):
        COCOKeypoints(coco, tmp_path)


def test_close_ups_zoom_in_inside_the_box_and_cut_the_person() -> None:
    """A tight draw: the side between 2**-tight_scale and 1 times the box's, the crop inside
    the box, and over many draws every part of the box shown; the other kinds untouched."""
    framing = Framing(tight_prob=1.0, tight_scale=1.0)
    rng = np.random.default_rng(0)
    center, side = np.array([50.0, 80.0]), 40.0
    sides, centres = [], []
    for _ in range(400):
        c, s, kind = framing.frame(rng, center, side, (200, 300))
        assert kind == "tight"
        assert side / 2 - 1e-9 <= s <= side + 1e-9
        assert np.all(np.abs(c - center) <= (side - s) / 2 + 1e-9)  # inside the box
        sides.append(s), centres.append(c)
    assert min(sides) < 0.55 * side and max(sides) > 0.95 * side
    offsets = (np.array(centres) - center) / side
    assert offsets.min() < -0.15 and offsets.max() > 0.15  # top and bottom, left and right
    # the same four draws as before: a config without close-ups frames exactly as it did
    old, new = (
        Framing(loose_prob=0.5, shift=0.2),
        Framing(loose_prob=0.5, shift=0.2, tight_prob=0.0),
    )
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):
        fa, fb = old.frame(a, center, side, (200, 300)), new.frame(b, center, side, (200, 300))
        assert fa[2] == fb[2] and fa[1] == fb[1] and np.array_equal(fa[0], fb[0])
