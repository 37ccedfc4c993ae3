"""The proof that crops and augmentation keep sub-pixel truth.

A Gaussian blob rendered at a sub-pixel joint is pushed through every augmentation together
with the joint; the warped blob's centroid must land on the warped joint within 0.05 px.
"""

import numpy as np
import pytest

from dsntpose.data.joints import LSP_JOINTS
from dsntpose.data.transforms import (
    Augment,
    AugmentParams,
    apply_affine,
    crop_matrix,
    invert_affine,
    sample_rng,
    transform_sample,
    warp_image,
)
from dsntpose.ops import normalized_to_pixel

SIZE = 96


def blob(
    height: int, width: int, center: np.ndarray, sigma: float = 3.0, peak: float = 1.0
) -> np.ndarray:
    """``(H, W)`` float32 Gaussian with its mean at ``center`` (x, y) in pixel-centre px."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    d2 = (xs - center[0]) ** 2 + (ys - center[1]) ** 2
    return (peak * np.exp(-d2 / (2 * sigma**2))).astype(np.float32)


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted mean ``(x, y)`` of an ``(H, W)`` image in pixel-centre px."""
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    total = image.sum(dtype=np.float64)
    return np.array([(xs * image).sum() / total, (ys * image).sum() / total])


def test_blob_centroid_is_exact_before_warping() -> None:
    joint = np.array([40.37, 31.81])
    assert np.allclose(centroid(blob(70, 90, joint)), joint, atol=1e-4)


def test_plain_crop_maps_centre_and_edges() -> None:
    m = crop_matrix((100.0, 50.0), side=40.0, size=20)
    # The centre lands on the crop centre, the region's outer edges on the crop's outer edges.
    corners = apply_affine(m, np.array([[100.0, 50.0], [80.0, 30.0], [120.0, 70.0]]))
    assert np.allclose(corners, [[9.5, 9.5], [-0.5, -0.5], [19.5, 19.5]])


def test_flip_is_about_the_crop_centre() -> None:
    m = crop_matrix((100.0, 50.0), side=20.0, size=20, flip=True)
    points = apply_affine(m, np.array([[90.5, 50.0], [100.0, 41.0]]))
    # x' = (S - 1) - x in pixel-centre coordinates.
    assert np.allclose(points, [[19.0, 9.5], [9.5, 0.5]])


@pytest.mark.parametrize(
    "params",
    [
        AugmentParams(),
        AugmentParams(scale=2**0.5),
        AugmentParams(scale=2**-0.5),
        AugmentParams(rotation=37.0),
        AugmentParams(rotation=-60.0),
        AugmentParams(flip=True),
        AugmentParams(scale=1.3, rotation=-23.0, flip=True),
    ],
)
def test_warped_blob_follows_warped_joint(params: AugmentParams) -> None:
    joint = np.array([57.23, 44.61])
    image = blob(100, 120, joint)
    center, side = np.array([61.4, 47.9]), 70.0
    m = crop_matrix(center, side * params.scale, SIZE, params.rotation, params.flip)
    crop = warp_image(image, m, SIZE)
    assert np.abs(centroid(crop) - apply_affine(m, joint)).max() < 0.05


def test_every_random_augmentation_through_the_sample_path() -> None:
    """uint8 image, colour gains, joint permutation on flips: the blob of joint 0 lands on
    the row that now holds the original joint 0."""
    joint_set = LSP_JOINTS
    rng = np.random.default_rng(0)
    joints = rng.uniform(40, 80, size=(joint_set.num_joints, 2))
    joints[0] = (61.37, 58.82)
    gray = blob(120, 130, joints[0], sigma=3.5, peak=170.0)  # 1.4 x 170 < 255: no clipping
    image = np.repeat(np.round(gray)[..., None], 3, axis=2).astype(np.uint8)
    augment, flips, rotations = Augment(), 0, 0
    for draw in range(30):
        params = augment.sample(sample_rng(7, 0, draw))
        flips, rotations = flips + params.flip, rotations + (params.rotation != 0)
        out = transform_sample(
            image, joints, np.zeros(14, bool), (62.0, 60.0), 60.0, SIZE, joint_set, params
        )
        row = joint_set.flip_index[0] if params.flip else 0
        for channel in range(3):
            assert np.abs(centroid(out["image"][channel]) - out["joints_crop"][row]).max() < 0.05
    assert flips > 5 and rotations > 5  # both augmentations were exercised


def test_flip_twice_is_the_identity() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(80, 70, 3), dtype=np.uint8)
    joints = rng.uniform(10, 60, size=(14, 2))
    missing = np.zeros(14, bool)
    missing[3] = True
    plain = transform_sample(image, joints, missing, (35.0, 40.0), 64.0, SIZE, LSP_JOINTS)
    flipped = transform_sample(
        image, joints, missing, (35.0, 40.0), 64.0, SIZE, LSP_JOINTS, AugmentParams(flip=True)
    )
    assert not np.array_equal(plain["image"], flipped["image"])
    # Flip the flipped crop again about its own centre: the plain crop, pixel for pixel.
    mirror = crop_matrix(((SIZE - 1) / 2, (SIZE - 1) / 2), SIZE, SIZE, flip=True)
    assert np.array_equal(mirror @ np.vstack([mirror, [0, 0, 1]]), np.eye(2, 3))
    again = np.stack([warp_image(channel, mirror, SIZE) for channel in flipped["image"]])
    assert np.array_equal(again, plain["image"])
    order = np.asarray(LSP_JOINTS.flip_index)
    joints_again = apply_affine(mirror, flipped["joints_crop"])[order]
    assert np.allclose(joints_again, plain["joints_crop"], atol=1e-9)
    assert np.array_equal(flipped["joints_missing"][order], plain["joints_missing"])
    assert np.array_equal(flipped["mask"][order], plain["mask"])


def test_inverse_returns_joints_to_the_image() -> None:
    rng = np.random.default_rng(2)
    image = np.zeros((720, 1280, 3), np.uint8)
    augment = Augment()
    for draw in range(50):
        joints = rng.uniform([0, 0], [1280, 720], size=(14, 2))
        missing = rng.random(14) < 0.1
        params = augment.sample(sample_rng(3, 1, draw))
        center, side = rng.uniform([300, 200], [900, 500]), rng.uniform(300, 900)
        out = transform_sample(image, joints, missing, center, side, 224, LSP_JOINTS, params)
        ok = ~out["joints_missing"]
        back = apply_affine(out["inverse"], out["joints_crop"])
        assert np.abs(back[ok] - out["joints_image"][ok]).max() < 1e-4
        # The float32 normalised joints of a sample survive the trip too.
        norm = ((2 * out["joints_crop"] + 1) / 224 - 1).astype(np.float32)
        back32 = apply_affine(
            out["inverse"], normalized_to_pixel(norm.astype(np.float64), (224, 224))
        )
        assert np.abs(back32[ok] - out["joints_image"][ok]).max() < 1e-3
        assert np.isnan(out["joints_image"][~ok]).all()
    m = crop_matrix((10.0, 20.0), 30.0, 64, 33.0, True)
    assert np.allclose(invert_affine(invert_affine(m)), m)


@pytest.mark.parametrize("bgr", [False, True])
def test_colour_gains_channel_order_and_clipping(bgr: bool) -> None:
    rgb = np.array([200, 100, 30], np.uint8)
    image = np.tile(rgb[::-1] if bgr else rgb, (12, 12, 1))
    params = AugmentParams(color=(1.4, 0.6, 1.0))
    out = transform_sample(
        image, np.zeros((14, 2)), np.zeros(14, bool), (5.5, 5.5), 12.0, 12, LSP_JOINTS, params, bgr
    )
    assert out["image"].dtype == np.float32 and out["image"].shape == (3, 12, 12)
    expected = [1.0, 100 * 0.6 / 255, 30 / 255]  # 200 * 1.4 > 255 is clipped to 1
    assert np.allclose(out["image"].reshape(3, -1), np.array(expected)[:, None], atol=1e-6)


@pytest.mark.parametrize("shape", [(70, 50), (150, 110), (720, 1280)])
@pytest.mark.parametrize("bgr", [False, True])
def test_sample_image_is_the_plain_warp_and_lookup(shape: tuple[int, int], bgr: bool) -> None:
    """Whichever way the crop is warped (small images are padded to 4 channels first) and
    converted (lookup tables), the sample image is exactly: one 3-channel ``warp_image``, then
    ``min(v * gain / 255, 1)`` per channel in float64, rounded to float32."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    joints, missing = rng.uniform(0, 50, size=(14, 2)), np.zeros(14, bool)
    augment, size = Augment(), 64
    for draw in range(6):
        params = augment.sample(sample_rng(5, 0, draw)) if draw else AugmentParams()
        center, side = rng.uniform(20, 50, size=2), rng.uniform(30, 90)
        out = transform_sample(image, joints, missing, center, side, size, LSP_JOINTS, params, bgr)
        m = crop_matrix(center, side * params.scale, size, params.rotation, params.flip)
        crop = warp_image(image, m, size)[..., ::-1] if bgr else warp_image(image, m, size)
        gains = np.asarray(params.color) / 255.0
        expected = np.minimum(crop.astype(np.float64) * gains, 1.0).astype(np.float32)
        assert np.array_equal(out["image"], expected.transpose(2, 0, 1))


def test_out_of_crop_joints_are_masked() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    joints = np.full((14, 2), 50.0)
    joints[0] = (50.0, 69.4)  # inside a crop of 40 px around (50, 50): edge at 69.5 + tiny
    joints[1] = (50.0, 69.6)  # outside
    joints[2] = (30.6, 50.0)  # inside (edge at 30.5)
    missing = np.zeros(14, bool)
    missing[3] = True
    out = transform_sample(image, joints, missing, (49.5, 49.5), 40.0, 40, LSP_JOINTS)
    assert out["mask"][:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert out["mask"][4:].min() == 1.0


def test_augment_draws_follow_the_recipe() -> None:
    augment = Augment()
    draws = [augment.sample(sample_rng(0, 0, i)) for i in range(2000)]
    log_scale = np.log2([d.scale for d in draws])
    rotation = np.array([d.rotation for d in draws])
    color = np.array([d.color for d in draws])
    assert np.abs(log_scale).max() <= 0.5 + 1e-12 and 0.2 < log_scale.std() < 0.26
    assert 0.35 < np.mean(rotation != 0) < 0.45 and np.abs(rotation).max() <= 60.0
    assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
    assert color.min() >= 0.6 and color.max() <= 1.4
    # Reproducible from (seed, epoch, index); a different epoch draws differently.
    assert augment.sample(sample_rng(0, 0, 5)) == draws[5]
    assert augment.sample(sample_rng(0, 1, 5)) != draws[5]


def test_bad_inputs_name_the_expected_shape() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(14, 2\)"):
        transform_sample(image, np.zeros((13, 2)), np.zeros(13, bool), (5, 5), 10, 8, LSP_JOINTS)
    with pytest.raises(ValueError, match="uint8"):
        transform_sample(
            image.astype(np.float32),
            np.zeros((14, 2)),
            np.zeros(14, bool),
            (5, 5),
            10,
            8,
            LSP_JOINTS,
        )
    with pytest.raises(ValueError, match="positive"):
        crop_matrix((0, 0), 0.0, 8)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        invert_affine(np.eye(3))
    with pytest.raises(ValueError, match="flip_prob"):
        Augment(flip_prob=1.5)
    with pytest.raises(ValueError, match="color_low"):
        Augment(color_low=-0.1)
