"""Open Images' detection metric on hand-computed cases: duplicates, no fall-back to a second box,
group-of boxes, verified-negative labels, unverified classes, mAP over classes with ground truth.

The expected figures are worked out by hand in each test's comments; the same cases were run through
the reference code (TensorFlow Object Detection API's OpenImagesDetectionChallengeEvaluator, see
scripts/check_openimages_metric.py) and gave the same numbers.
"""

import pytest

from app.models.metrics_openimages import ImageTruth, average_precision, expand_hierarchy, open_images_metric

A, B = "/m/a", "/m/b"
G1 = (0.0, 0.0, 0.5, 0.5)


def test_one_class_tp_fp_tp():
    truth = {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False), (A, (0.6, 0.6, 0.9, 0.9), False)])}
    dets = [
        ("i1", A, (0.1, 0.1, 0.3, 0.3), 0.9),  # TP
        ("i1", A, (0.4, 0.0, 0.5, 0.05), 0.8),  # FP: overlaps nothing
        ("i1", A, (0.6, 0.6, 0.88, 0.9), 0.7),  # TP (IoU 0.93)
    ]
    m = open_images_metric(dets, truth)
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: made monotone, 1 up to 1/2 then 2/3: AP = 0.5 + 0.5 * 2/3.
    assert m["classes"][A]["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert m["map"] == pytest.approx(5 / 6)
    assert (m["classes"][A]["true_positives"], m["classes"][A]["false_positives"]) == (2, 1)


def test_a_duplicate_is_a_false_positive_and_never_falls_back_on_the_second_best_box():
    b1, b2 = (0.1, 0.1, 0.5, 0.5), (0.2, 0.1, 0.6, 0.5)
    truth = {"i1": ImageTruth(boxes=[(A, b1, False), (A, b2, False)])}
    dets = [
        ("i1", A, b1, 0.9),  # TP on b1
        # IoU 0.82 with b1 (taken), 0.74 with b2 (free): its best box is b1, so it is a false positive
        ("i1", A, (0.14, 0.1, 0.54, 0.5), 0.8),
    ]
    m = open_images_metric(dets, truth)
    # TP then FP over 2 objects: recall 1/2 at precision 1: AP 0.5.
    assert m["classes"][A]["ap"] == pytest.approx(0.5)
    assert m["classes"][A]["false_positives"] == 1


def test_group_of_box_counts_once_with_its_best_detection_and_ignores_the_rest():
    truth = {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.6, 0.6, 0.9, 0.9), False)])}
    dets = [
        ("i1", A, (0.5, 0.0, 0.6, 0.1), 0.95),  # FP: touches the group-of box only on its edge
        ("i1", A, (0.1, 0.1, 0.2, 0.2), 0.9),  # inside the group-of box: its one hit, score 0.9
        ("i1", A, (0.3, 0.3, 0.4, 0.4), 0.6),  # inside it too: ignored
        ("i1", A, (0.4, 0.4, 0.6, 0.6), 0.5),  # a quarter inside (IoA 0.25): FP
        ("i1", A, (0.6, 0.6, 0.9, 0.9), 0.7),  # TP on the single box
    ]
    m = open_images_metric(dets, truth)
    c = m["classes"][A]
    # Ranked: 0.95 FP, 0.9 TP (group), 0.7 TP, 0.5 FP over 2 objects: precision 0, 1/2, 2/3, 1/2 at
    # recall 0, 1/2, 1, 1: monotone 2/3 from recall 0 to 1: AP 2/3.
    assert c["ap"] == pytest.approx(2 / 3)
    assert (c["true_positives"], c["false_positives"], c["ignored_group_of"]) == (2, 2, 1)
    assert c["ground_truth"] == 2


def test_a_group_of_box_nobody_hit_is_one_missed_object():
    truth = {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.6, 0.6, 0.9, 0.9), False)])}
    m = open_images_metric([("i1", A, (0.6, 0.6, 0.9, 0.9), 0.7)], truth)
    assert m["classes"][A]["ap"] == pytest.approx(0.5)  # 1 of 2 objects at precision 1


def test_a_detection_taken_by_a_single_box_is_not_also_a_group_hit():
    # The single box lies inside the group-of box: the detection on it is a TP in the first stage, so
    # the group-of box stays unhit (one missed object), as the reference matches single boxes first.
    truth = {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.1, 0.1, 0.3, 0.3), False)])}
    m = open_images_metric([("i1", A, (0.1, 0.1, 0.3, 0.3), 0.8)], truth)
    assert m["classes"][A]["ap"] == pytest.approx(0.5)
    # A second detection inside the group-of box hits it: both objects found.
    m = open_images_metric(
        [("i1", A, (0.1, 0.1, 0.3, 0.3), 0.8), ("i1", A, (0.35, 0.35, 0.45, 0.45), 0.3)], truth
    )
    assert m["classes"][A]["ap"] == pytest.approx(1.0)


def test_verified_negative_label_makes_false_positives_unverified_class_is_ignored():
    truth = {
        "neg": ImageTruth(labels={B: 0}),  # a person checked: no B here
        "pos": ImageTruth(boxes=[(B, (0.2, 0.2, 0.6, 0.6), False)], labels={B: 1}),
        "unverified": ImageTruth(labels={A: 1}, boxes=[(A, (0.1, 0.1, 0.2, 0.2), False)]),
    }
    dets = [
        ("neg", B, (0.1, 0.1, 0.4, 0.4), 0.9),  # FP: B verified absent
        ("pos", B, (0.2, 0.2, 0.6, 0.6), 0.8),  # TP
        ("unverified", B, (0.0, 0.0, 1.0, 1.0), 0.99),  # ignored: nobody checked B on this image
        ("elsewhere", B, (0.0, 0.0, 1.0, 1.0), 0.97),  # ignored: an image without any ground truth
        ("unverified", A, (0.1, 0.1, 0.2, 0.2), 0.5),  # TP
    ]
    m = open_images_metric(dets, truth)
    # B: FP 0.9 then TP 0.8 over 1 object: precision 1/2 at recall 1: AP 0.5. A: 1.0. mAP 0.75.
    assert m["classes"][B]["ap"] == pytest.approx(0.5)
    assert m["classes"][A]["ap"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(0.75)
    assert m["ignored_unverified"] == 2 and m["detections"] == 5


def test_a_class_without_ground_truth_has_no_ap_and_stays_out_of_the_mean():
    truth = {
        "i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False)], labels={B: 0}),
    }
    dets = [("i1", A, (0.1, 0.1, 0.3, 0.3), 0.9), ("i1", B, (0.5, 0.5, 0.6, 0.6), 0.9)]
    m = open_images_metric(dets, truth)
    assert m["classes"][B]["ap"] is None and m["classes"][B]["false_positives"] == 1
    assert m["map"] == pytest.approx(1.0)
    # Asked about a class list: other classes' detections and truth leave; a class with truth and no
    # detection scores 0.
    truth["i1"].boxes.append(("/m/c", (0.0, 0.0, 1.0, 1.0), False))
    m = open_images_metric(dets, truth, classes=[A, "/m/c"])
    assert set(m["classes"]) == {A, "/m/c"} and m["classes"]["/m/c"]["ap"] == 0.0
    assert m["map"] == pytest.approx(0.5)


def test_boxes_without_area_are_dropped_and_no_ground_truth_gives_no_map():
    truth = {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False)])}
    m = open_images_metric(
        [("i1", A, (0.2, 0.2, 0.2, 0.4), 0.99), ("i1", A, (0.1, 0.1, 0.3, 0.3), 0.5)], truth
    )
    assert m["classes"][A]["ap"] == 1.0 and m["classes"][A]["false_positives"] == 0
    assert open_images_metric([], {})["map"] is None


def test_average_precision_matches_voc_definition():
    # Two objects; ranked TP, FP, FP, TP: precision 1, 1/2, 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1:
    # AP = 1/2 * 1 + 1/2 * 1/2.
    assert average_precision([(0.9, 1), (0.8, 0), (0.7, 0), (0.6, 1)], 2) == pytest.approx(0.75)
    assert average_precision([], 3) == 0.0
    assert average_precision([(0.5, 0)], 0) is None


def test_the_cross_check_script_has_help_and_names_a_missing_wheel():
    import subprocess
    import sys

    from app.paths import REPO_ROOT

    script = str(REPO_ROOT / "scripts" / "check_openimages_metric.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--wheel" in out.stdout
    out = subprocess.run([sys.executable, script, "--wheel", "nope.whl"], capture_output=True, text=True)
    assert out.returncode == 2 and "--wheel nope.whl is not a file" in out.stderr


def test_hierarchy_expands_boxes_up_positive_labels_up_and_negative_labels_down():
    person, man, animal, dog = "/m/person", "/m/man", "/m/animal", "/m/dog"
    ancestors = {man: {person}, dog: {animal}}
    descendants = {person: {man}, animal: {dog}}
    truth = {
        "i1": ImageTruth(boxes=[(man, (0.1, 0.1, 0.4, 0.9), False)], labels={man: 1, animal: 0}),
        "i2": ImageTruth(labels={dog: 1}),
    }
    expanded = expand_hierarchy(truth, ancestors, descendants)
    assert expanded["i1"].boxes == [(man, (0.1, 0.1, 0.4, 0.9), False), (person, (0.1, 0.1, 0.4, 0.9), False)]
    assert expanded["i1"].labels == {man: 1, animal: 0, person: 1, dog: 0}
    assert expanded["i2"].labels == {dog: 1, animal: 1}
    assert truth["i1"].boxes == [(man, (0.1, 0.1, 0.4, 0.9), False)]  # the input is left as it was
    dets = [
        ("i1", person, (0.1, 0.1, 0.4, 0.9), 0.9),  # the Man box is a Person box too: TP
        ("i1", dog, (0.5, 0.5, 0.9, 0.9), 0.8),  # no Animal here, so no Dog: FP
        ("i2", person, (0.0, 0.0, 1.0, 1.0), 0.7),  # Person not verified on i2: ignored
    ]
    m = open_images_metric(dets, expanded)
    assert m["classes"][person]["ap"] == 1.0 and m["classes"][man]["ap"] == 0.0
    assert m["classes"][dog]["ap"] is None and m["classes"][dog]["false_positives"] == 1
    assert m["ignored_unverified"] == 1
    # Without the hierarchy neither Person nor Dog is verified on i1: all three detections are ignored.
    m = open_images_metric(dets, truth)
    assert person not in m["classes"] and m["ignored_unverified"] == 3
