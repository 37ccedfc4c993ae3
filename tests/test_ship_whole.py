"""scripts/ship_whole.py's card: the targets table and the training cost, from its records."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
ship = load_script("ship_whole", REPO / "scripts" / "ship_whole.py")
RECORD = json.loads((REPO / "docs" / "results" / "model_card_whole.json").read_text())


def peers_run(ours: float, ours_ms: float, weights: str, sha: str | None = None) -> dict:
    """A minimal benchmarks/peers.py record that ran ``weights`` as --also."""
    lsp = {"also1_whole": ours, "also1_whole_flipfinal": ours - 0.5,
           "also1_whole_noflip": ours - 1, "mediapipe": 78.0,
           "movenet_lightning": 86.2, "movenet_thunder": 90.2}  # fmt: skip
    ms = {"also1_whole": 2 * ours_ms, "also1_whole_flipfinal": 1.3 * ours_ms,
          "also1_whole_noflip": ours_ms, "mediapipe": 34.0,
          "movenet_lightning": 33.5, "movenet_thunder": 116.0}  # fmt: skip
    return {
        "date": "2026-12-06T15:02:41+00:00",
        "also": [{"key": "also1", "checkpoint": weights, "sha256": sha}],
        "lsp": {k: {"visible": {"total": v}} for k, v in lsp.items()},
        "latency": {"results": {k: {"median_ms": v} for k, v in ms.items()}},
        "contenders": {"also1_whole": {"how": "Predictor(flip=True, engine=onnxruntime, ...)"}},
    }


def rows(lines: list[str]) -> dict[str, str]:
    """Targets table: first cell -> last cell."""
    table = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    return {line.split(" | ")[0][2:]: line.split(" | ")[-1].rstrip(" |") for line in table}


def test_targets_are_judged_from_the_records_and_the_same_peers_run() -> None:
    record = copy.deepcopy(RECORD)
    # judged as the Predictor gives it (flip): the figures without flip do not decide
    record["calibration"].update(joint_ece_flip=0.048, joint_ece_flip_interval=[0.039, 0.061])
    record["calibration"].update(joint_ece=0.2, joint_auroc=0.99)
    got = rows(ship.targets_section(record, peers_run(72.9, 24.0, record["weights_file"])))
    assert len(got) == 6
    lightning = next(v for k, v in got.items() if "Lightning" in k)
    assert (
        lightning == "**missed** (faster than Lightning: at best 72.4 with flip of the final crop)"
    )
    assert next(v for k, v in got.items() if "MediaPipe" in k) == "**missed**"
    assert next(v for k, v in got.items() if "presence" in k) == "**met**"
    assert next(v for k, v in got.items() if "AUROC of within" in k) == "**missed**"
    assert next(v for k, v in got.items() if "calibration" in k) == (
        "**met** (its interval reaches above 0.05)"
    )
    # beating Lightning in the same run meets it; a peers run of another file is not used
    better = rows(ship.targets_section(record, peers_run(88.0, 24.0, record["weights_file"])))
    assert next(v for k, v in better.items() if "Lightning" in k).startswith("**met**")
    # accurate enough only where slower than Lightning: missed
    slow = rows(ship.targets_section(record, peers_run(87.0, 34.0, record["weights_file"])))
    assert next(v for k, v in slow.items() if "Lightning" in k) == (
        "**missed** (no setting of ours ran faster than Lightning)"
    )
    other = ship.targets_section(record, peers_run(88.0, 24.0, "runs/other.pt"))
    assert any("did not include this file" in line for line in other)
    # the same path holding other weights (an earlier ship): not this file's run
    record["weights_sha256"] = "a" * 64
    stale = ship.targets_section(record, peers_run(88.0, 24.0, record["weights_file"], "b" * 64))
    assert any("did not include this file" in line for line in stale)
    same = ship.targets_section(record, peers_run(88.0, 24.0, record["weights_file"], "a" * 64))
    assert not any("did not include this file" in line for line in same)
    # the peers run's confidence figures (each model's own score) stand beside ours
    assert not any("own score" in line for line in same)
    run = peers_run(88.0, 24.0, record["weights_file"], "a" * 64)
    run["lsp"]["also1_whole"]["confidence"] = {"auroc": 0.8123}
    run["lsp"]["movenet_lightning"]["confidence"] = {"auroc": 0.7}
    (line,) = [x for x in ship.targets_section(record, run) if "AUROC of within" in x]
    assert "ours (flip) 0.812, Lightning's keypoint score 0.700 |" in line
    (line,) = [x for x in ship.targets_section(record, run) if "calibration error" in x]
    assert "own score" not in line  # no ECE in that run: nothing beside ours
    # with ECE and the mean score: the direction of the miscalibration on LSP test is said
    run["lsp"]["also1_whole"]["confidence"].update(ece=0.0656, mean_score=0.744, right_pct=79.3)
    run["lsp"]["mediapipe"]["confidence"] = {"auroc": 0.83, "ece": 0.0871}
    (line,) = [x for x in ship.targets_section(record, run) if "calibration error" in x]
    assert "0.048 (0.039-0.061) on held-out people; each model's own score" in line
    assert "ours (flip) 0.066 (mean score 0.744 where 79.3% are right: under-confident" in line
    assert "MediaPipe's visibility 0.087 |" in line and line.endswith("above 0.05) |")
    run["lsp"]["also1_whole"]["confidence"].update(mean_score=0.9)
    (line,) = [x for x in ship.targets_section(record, run) if "calibration error" in x]
    assert "over-confident" in line


def test_training_cost_sums_the_runs_and_derives_the_epoch_time() -> None:
    record = copy.deepcopy(RECORD)
    record["training_runs"] = [
        {"global_step": 789 * 8, "epoch": 9, "wall_minutes": 600.0,
         "train_minutes_at_median_speed": 240.0, "train_images_per_s_median": 8.0,
         "val_pck_by_epoch": [50.0, 60.0]},
        {"global_step": 789 * 2, "epoch": 3, "wall_minutes": 60.0,
         "train_minutes_at_median_speed": 30.0, "train_images_per_s_median": 10.0,
         "val_pck_by_epoch": [61.0, 62.0]},
    ]  # fmt: skip
    text = "\n".join(ship.targets_section(record, None))
    assert "7890 steps of batch 16 in 2 run(s)" in text and "11.0 h of wall clock" in text
    # the last run: 789 * 2 steps of 16 over 2 epochs = 12624 samples an epoch at 10 images/s
    assert "one epoch (12624 samples) takes 21 min" in text
    assert "[50.0, 60.0]; [61.0, 62.0]" in text
    assert "2 + 2 epochs in the runs counted here" in text  # each run's validated epochs


def test_the_card_says_how_coordinates_are_read_and_what_chose_it(tmp_path, monkeypatch) -> None:
    record = copy.deepcopy(RECORD)
    record["recipe"]["model"].update(coords="dsnt")
    assert ship._decode_line(record) == ""
    record["recipe"]["model"].update(coords="local", local_radius=2)
    choice = tmp_path / "decode_choice.json"
    monkeypatch.setattr(ship, "DECODE_JSON", choice)
    assert "5 x 5-cell window" in ship._decode_line(record)
    assert "choose_decode" not in ship._decode_line(record)  # no record of the choice
    choice.write_text(json.dumps({"split": "validation: 10 joints", "pck20": {"dsnt": 64.0,
                      "local2": 65.7}, "chosen": {"coords": "local", "local_radius": 2}}))  # fmt: skip
    line = ship._decode_line(record)
    assert "scripts/choose_decode.py" in line and "dsnt 64.0, local2 65.7" in line
    record["recipe"]["model"]["local_radius"] = 3  # another radius than the one chosen
    assert "choose_decode" not in ship._decode_line(record)


def test_choose_decode_refuses_bad_input_in_one_line(tmp_path, capsys) -> None:
    choose = load_script("choose_decode", REPO / "scripts" / "choose_decode.py")
    assert choose.main([str(tmp_path / "none.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("choose_decode: ") and err.count("\n") == 1


def test_whole_validation_scores_the_person_found_on_the_whole_image(tmp_path, capsys) -> None:
    import cv2
    import numpy as np
    import pytest
    import torch

    from dsntpose.predictor import Predictor
    from test_predict import BLOB_CONFIG, blob_image, blob_model

    whole = load_script("whole_validation", REPO / "scripts" / "whole_validation.py")
    assert whole.parse_setting("flip=false,max_passes=2") == {"flip": False, "max_passes": 2}
    assert whole.parse_setting("flip_passes=final") == {"flip_passes": "final"}
    for bad in ("margin=2", "flip=maybe", "max_passes=two", "flip"):
        with pytest.raises(ValueError, match="--setting"):
            whole.parse_setting(bad)
    # a blob at (70, 20): the blob model puts every joint there
    image = blob_image(60, 100, 70.0, 20.0)[..., ::-1].copy()  # BGR, as cv2.imread gives
    names = get_names()
    limb = np.array([n in whole.LIMBS for n in names])
    here = {"source": "a", "joints": np.tile([70.0, 20.0], (16, 1)), "torso": 10.0}
    far = {"source": "b", "joints": np.tile([30.0, 40.0], (16, 1)), "torso": 10.0}
    missing = ~limb  # only the limbs are labelled
    missing[0] = True  # ... but one
    people = [{**here, "missing": missing}, {**far, "missing": ~limb}]
    predictor = Predictor(blob_model(), BLOB_CONFIG, flip=True, threads=None)
    blank = np.zeros((40, 40, 3), np.uint8)
    result = whole.score(predictor, people, [image, image], backgrounds=[blank])
    assert result["per_source"] == {"a": 100.0, "b": 0.0}
    assert result["pck20_limbs"] == pytest.approx(100 * 11 / 23, abs=0.01)
    assert result["person_found"] == 2
    assert result["background_person_found"] == 1  # a model without presence finds one anywhere
    assert result["background_person_found_index"] == [0]
    montage = tmp_path / "bg.png"
    whole.write_montage([blank, blank], [3, 7], montage, side=32)
    assert cv2.imread(str(montage)).shape == (32, 64, 3)
    whole.write_montage([], [], montage)  # nothing flagged: no stale picture left
    assert not montage.exists()
    assert result["crops_per_image"] in (4, 6)  # 2 or 3 passes, both views each
    assert isinstance(predictor.model, torch.nn.Module)  # the counting wrapper is removed
    # given the box of the labelled joints, the crop is taken there (a blank spot: the crop's
    # centre, where the far person's joints are)
    boxed = whole.score(predictor, people, [image, image], box=True)
    assert boxed["per_source"]["b"] == 100.0 and boxed["crops_per_image"] == 2
    # close-ups: the crop of the upper body's labelled joints (+15% + 4 px), the joints moved
    # into it, those outside it missing; people without both shoulders left out
    tall = np.zeros((200, 120, 3), np.uint8)
    body = np.zeros((16, 2))
    for name, xy in {
        "head_top": (60, 20), "upper_neck": (60, 40), "thorax": (60, 50), "r_shoulder": (45, 50),
        "l_shoulder": (75, 50), "r_elbow": (40, 75), "l_elbow": (80, 75), "r_wrist": (40, 100),
        "l_wrist": (80, 100), "pelvis": (60, 125), "r_hip": (50, 125), "l_hip": (70, 125),
        "r_knee": (50, 150), "l_knee": (70, 150), "r_ankle": (50, 190), "l_ankle": (70, 190),
    }.items():  # fmt: skip
        body[names.index(name)] = xy
    shoulderless = np.zeros(16, bool)
    shoulderless[names.index("l_shoulder")] = True
    people2 = [
        {"source": "a", "joints": body, "missing": np.zeros(16, bool), "torso": 70.0},
        {"source": "b", "joints": body, "missing": shoulderless, "torso": 70.0},
    ]
    close_people, crops = whole.closeups(people2, [tall, tall], names)
    assert len(close_people) == len(crops) == 1
    pad = 0.15 * 80 + 4  # the upper joints span 40 x 80 px
    x0, y0 = int(np.floor(40 - pad)), int(np.floor(20 - pad))
    assert crops[0].shape[:2] == (int(np.ceil(100 + pad)) + 1 - y0, int(np.ceil(80 + pad)) + 1 - x0)
    np.testing.assert_allclose(close_people[0]["joints"], body - [x0, y0])
    cut = {names[j] for j in np.flatnonzero(close_people[0]["missing"])}
    assert cut == {"pelvis", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"}
    # bad input: one line, exit 2
    assert whole.main([str(tmp_path / "none.pt")]) == 2
    assert whole.main(["--setting", "margin=2"]) == 2
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    assert whole.main([str(tmp_path / "junk.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("whole_validation: ") for line in err)


def get_names() -> list[str]:
    from dsntpose.data.joints import get_joint_set

    return list(get_joint_set("mpii").names)


def test_the_card_shows_whole_validation_only_for_the_file_it_measured(tmp_path, monkeypatch):
    record = {
        "sha256": "abc",
        "people": 600,
        "split": "validation: 600 held-out people",
        "rows": [
            {"setting": {"flip": True}, "pck20_limbs": 60.2, "per_source": {"lsp": 77.8},
             "person_found": 585, "crops_per_image": 4.33, "backgrounds": 60,
             "background_person_found": 1,
             "closeups": {"people": 580, "pck20_limbs": 55.5, "per_source": {"lsp": 70.1},
                          "person_found": 500, "crops_per_image": 4.1}},
            {"setting": {"box": True, "flip": True}, "pck20_limbs": 63.1, "per_source": {"lsp": 76.3},
             "person_found": 600, "crops_per_image": 2.0, "backgrounds": 0,
             "background_person_found": 0},
        ],
    }  # fmt: skip
    path = tmp_path / "whole_validation.json"
    path.write_text(json.dumps(record))
    monkeypatch.setattr(ship, "WHOLE_VALIDATION_JSON", path)
    lines = ship._whole_validation_lines({"weights_sha256": "abc"})
    assert "| flip=True | 60.2 | lsp 77.8 | 585 of 600 | 4.33 | 1 of 60 |" in lines
    assert "| box=True, flip=True | 63.1 | lsp 76.3 | 600 of 600 | 2.0 | - |" in lines
    assert (
        "| flip=True, upper-body close-ups | 55.5 (joints in the crop) | lsp 70.1 | 500 of 580 "
        "| 4.1 | - |" in lines
    )
    assert ship._whole_validation_lines({"weights_sha256": "other"}) == []
    cost = ship._search_cost({"weights_sha256": "abc"})
    assert "the search costs 2.9 points (60.2 on the limbs against 63.1 given" in cost
    assert ship._search_cost({"weights_sha256": "other"}) == ""
    assert "whole_validation" in ship.render({**RECORD, "weights_sha256": "abc"})


def test_the_card_cites_the_fit_gap_of_the_file_it_measured(tmp_path, monkeypatch) -> None:
    def part(pck: float, people: int) -> dict:
        return {"pck20": pck, "people": people, "joints": 10 * people}

    record = {
        "sha256": "abc",
        "training": {"all": part(77.45, 600), "lsp": part(84.96, 57), "lspet": part(72.94, 427)},
        "held_out": {"all": part(70.65, 600), "lsp": part(81.71, 50), "lspet": part(66.72, 458)},
    }
    path = tmp_path / "fit_gap.json"
    path.write_text(json.dumps(record))
    monkeypatch.setattr(ship, "FIT_GAP_JSON", path)
    text = ship._fit_gap({"weights_sha256": "abc"})
    assert "of its own training people it scores 77.45 against 70.65 on the held-out" in text
    assert "LSP 84.96 / 81.71, LSP-extended 72.94 / 66.72;" in text
    assert text.endswith("falls short on the people it trained on too")
    assert ship._fit_gap({"weights_sha256": "other"}) == ""
    cost = "\n".join(ship.targets_section({**RECORD, "weights_sha256": "abc"}, None))
    assert "well-framed crop; on a draw of 600 of its own training people" in cost


def test_latency_line_names_each_flip_mode_it_has() -> None:
    lat = {"engine": "OnnxModel", "whole_photo_predictor": 18.2, "whole_photo_predictor_flip": 38.7,
           "whole_photo_predictor_range": [17.5, 52.9], "images": 20}  # fmt: skip
    line = ship._latency_line(lat)
    assert "18.2 ms (38.7 ms with flip), median over the first 20" in line
    assert "final" not in line
    line = ship._latency_line({**lat, "whole_photo_predictor_flip_final": 29.9})
    assert (
        '38.7 ms with flip, 29.9 ms with flip on the final crop only (`flip_passes="final"`)'
        in line
    )


def test_reship_refuses_bad_input_in_one_line(tmp_path) -> None:
    import subprocess

    script = str(REPO / "scripts" / "reship_whole.sh")
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"x")
    cases = {
        (): "scripts/reship_whole.sh CHECKPOINT NOTE RUN_DIR",
        (str(ckpt), "note"): "usage: [PRIOR_RUNS=FILE]",  # no run folder and no prior runs
        (str(tmp_path / "none.ckpt"), "note", str(tmp_path)): "none.ckpt: no such checkpoint",
        (str(ckpt), "note", str(tmp_path)): "no last.ckpt (not a run folder)",
    }
    for args, message in cases.items():
        done = subprocess.run(["bash", script, *args], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr
        assert done.stderr.count("\n") == 1 and done.stdout == ""
    env = {**os.environ, "PRIOR_RUNS": str(tmp_path / "gone.json")}
    done = subprocess.run(["bash", script, str(ckpt), "note"], env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert (
        done.returncode == 2
        and done.stderr == f"reship_whole: PRIOR_RUNS={env['PRIOR_RUNS']}: no such file\n"
    )


def test_prior_runs_come_first_and_a_bad_file_is_one_line(tmp_path) -> None:
    import pytest

    prior = tmp_path / "card.json"
    prior.write_text(json.dumps({"training_runs": RECORD["training_runs"]}))
    assert ship.training_runs([], prior) == RECORD["training_runs"]
    for bad in ('{"training_runs": [{"epoch": 3}]}', "{}", "not json"):
        prior.write_text(bad)
        with pytest.raises(SystemExit, match=r"^ship_whole: --prior_runs .*card.json"):
            ship.training_runs([], prior)
    with pytest.raises(SystemExit, match="no training_runs there"):
        ship.training_runs([], tmp_path / "none.json")


def test_a_saved_model_has_no_step_record(tmp_path) -> None:
    import torch

    model = load_script("ship_model", REPO / "scripts" / "ship_model.py")
    saved = tmp_path / "model.pt"
    torch.save({"config": {}, "state_dict": {}}, saved)
    assert model.training_facts(saved) == {}
    record = copy.deepcopy(RECORD)
    record["recipe"]["train"]["epochs"] = 12
    record["training"] = {}
    assert "a saved snapshot of a run of 12 planned epochs (no step record)" in ship.render(record)
    assert "Training: a saved snapshot of a run" in ship.readme_block(record)
    record["training"] = {"epoch": 8, "global_step": 6312}
    assert "Training: epoch 8 of 12 planned, step 6312" in ship.readme_block(record)


def test_fit_gap_scores_each_source_and_rejects_bad_models(tmp_path, capsys) -> None:
    """scripts/fit_gap.py: PCK@0.2 per source from calibrate.collect's arrays (negatives, after
    the people, are left out; unlabelled joints do not count); a model that is not a mixed-data
    run, a missing or damaged file: one line, exit 2."""
    import numpy as np
    import pytest

    from dsntpose.checkpoint import save_model
    from dsntpose.config import ModelConfig
    from dsntpose.model import build_model

    gap = load_script("fit_gap", REPO / "scripts" / "fit_gap.py")
    correct = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=float)
    labelled = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=float)
    values = {
        "correct": correct,
        "labelled": labelled,
        "presence_target": np.array([1.0, 1.0, 1.0, 0.0]),  # the last: a background crop
    }
    got = gap.split_scores(values, np.array([0, 0, 2]), ["lsp", "lspet", "mpii_crops"])
    assert got["all"] == {"pck20": pytest.approx(100 * 3 / 8, abs=0.01), "people": 3, "joints": 8}
    assert got["lsp"]["pck20"] == 60.0 and got["lsp"]["joints"] == 5
    assert got["mpii_crops"]["pck20"] == 0.0 and "lspet" not in got
    assert gap.main([str(tmp_path / "none.pt")]) == 2
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    assert gap.main([str(tmp_path / "junk.pt")]) == 2
    tiny = ModelConfig(backbone="resnet18", output_stride=32, input_size=64, joints="lsp")
    lsp_model = save_model(build_model(tiny), tmp_path / "lsp.pt", tiny)  # not a mixed run
    assert gap.main([str(lsp_model)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("fit_gap: ") for line in err)
    assert "data.dataset: mixed" in err[-1]


def test_choose_decode_decodes_one_run_of_the_network_as_the_flip_test_does() -> None:
    """The network runs once (its outputs on the images and their mirrors); every decode read
    from those outputs scores exactly what the flip test run afresh with that decode gives."""
    import torch

    from dsntpose.config import ModelConfig
    from dsntpose.data.joints import get_joint_set
    from dsntpose.inference import back_project, flip_test
    from dsntpose.model import build_model

    choose = load_script("choose_decode", REPO / "scripts" / "choose_decode.py")
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", output_stride=16, input_size=64, upsample=True)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.head.conv.weight, std=0.2)  # maps with several peaks
    joint_set = get_joint_set("mpii")
    batches = []
    for _ in range(2):
        image = torch.rand(3, 3, 64, 64)
        with torch.no_grad():  # the truth near the plain decode: the decodes' spread matters
            guess = (flip_test(model, image, joint_set).coords + 1) * 32 - 0.5  # px
        joints = guess + 6.0 * torch.randn(3, 16, 2)
        missing = torch.rand(3, 16) < 0.2
        batches.append({
            "image": image,
            "inverse": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(3, 2, 3),
            "joints_image": joints, "norm_size": torch.full((3,), 40.0),
            "joints_missing": missing, "presence": torch.tensor([1.0, 1.0, 0.0]),
        })  # fmt: skip
    outputs = choose.views(model, batches)
    seen = set()
    for coords, radius in (("dsnt", 4), ("local", 1), ("local", 3)):
        model.head.coords, model.head.local_radius = coords, radius
        hits = total = 0
        for b in batches:  # the reference: the flip test run afresh
            merged = flip_test(model, b["image"], joint_set)
            px = back_project(merged.coords.double(), b["inverse"].double(), (64, 64))
            dist = torch.linalg.norm(px - b["joints_image"].double(), dim=-1)
            counted = ~b["joints_missing"] & (b["presence"][:, None] > 0)
            hits += int(((dist <= 0.2 * 40.0) & counted).sum())
            total += int(counted.sum())
        assert choose.score(model, batches, joint_set, outputs) == (100.0 * hits / total, total)
        seen.add(hits)
    assert len(seen) > 1  # the decodes differ here, so a stale decode would be caught


def test_the_calibration_sentence_names_every_fitted_weight() -> None:
    """The card's calibration formula gives each weight of calibrate.py's record, with the
    person terms when the record has them and without them for an earlier record."""
    own = {"visibility": 0.1, "map_confidence": 0.2, "log_peak": 0.3, "log_spread": -0.4,
           "log_scale": 1.5, "bias": {"r_ankle": -0.7, "head_top": 0.1}}  # fmt: skip
    earlier = ship._calibration_formula(own)
    assert "mean" not in earlier and "e = 1.5" in earlier and "r_ankle -0.7" in earlier
    person = {"person_visibility": 0.6, "person_map_confidence": 0.7,
              "person_log_peak": 0.8, "person_log_spread": -0.9}  # fmt: skip
    text = ship._calibration_formula({**own, **person})
    for name, value in (("f", 0.6), ("g", 0.7), ("h", 0.8), ("i", -0.9), ("d", -0.4)):
        assert f"{name} = {value}" in text
    assert "mean log(map spread)" in text and "head_top 0.1" in text
