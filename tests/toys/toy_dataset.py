"""A toy data set: a bright square on grey, its four corners and centre as the first joints of
the model's joint set (the rest missing). Added by tests as ``DATASETS["toy"] = SPEC``."""

from __future__ import annotations

from typing import Any

import numpy as np

from dsntpose.config import RunConfig
from dsntpose.data.common import PoseDataset, finish_sample
from dsntpose.data.joints import get_joint_set
from dsntpose.families import DatasetSpec


class Squares(PoseDataset):
    def __init__(self, count: int, size: int, joints: str, seed: int = 0) -> None:
        self.count, self.size, self.joint_set = count, size, get_joint_set(joints)
        self.augment, self.seed = None, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        rng = np.random.default_rng([self.seed or 0, index])
        s = self.size
        x0, y0 = rng.integers(2, s // 2, size=2)
        side = int(rng.integers(s // 4, s // 2 - 2))
        image = np.full((s, s, 3), 90, dtype=np.uint8)
        image[y0 : y0 + side, x0 : x0 + side] = 230
        j = len(self.joint_set.names)
        joints = np.zeros((j, 2))
        corners = [(x0, y0), (x0 + side, y0), (x0, y0 + side), (x0 + side, y0 + side)]
        joints[:5] = [*corners, (x0 + side / 2, y0 + side / 2)]
        missing = np.arange(j) >= 5
        centre = ((s - 1) / 2, (s - 1) / 2)
        return finish_sample(
            image, joints, missing, centre, float(s), s, self.joint_set, None, index, float(side)
        )


def splits(run: RunConfig, need_test: bool) -> tuple[Squares, Squares, Squares]:
    size, joints = run.model.input_size, run.model.joints
    test = Squares(8, size, joints, seed=1)
    return Squares(16, size, joints), test, test


def test_split(run: RunConfig) -> Squares:
    return Squares(8, run.model.input_size, run.model.joints, seed=1)


SPEC = DatasetSpec(splits=splits, test=test_split, joints=("lsp", "mpii"), root=None)
