"""Isotonic calibration, fusion, the new-individual decision and ECE, on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from ml import calibration as C
from ml.metrics import NEW_WHALE


def test_pav_is_monotone_and_averages_violators():
    out = C.pool_adjacent_violators(np.array([0.0, 1.0, 0.0, 1.0, 1.0]))
    assert np.all(np.diff(out) >= 0)
    assert np.allclose(out, [0, 0.5, 0.5, 1, 1])


def test_isotonic_calibrator_recovers_a_known_probability_and_round_trips():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 4000)
    y = rng.uniform(0, 1, 4000) < s  # P(same | s) = s
    cal = C.IsotonicCalibrator.fit(s, y)
    p = cal([0.1, 0.5, 0.9])
    assert np.all(np.diff(p) > 0)
    assert np.allclose(p, [0.1, 0.5, 0.9], atol=0.08)
    again = C.IsotonicCalibrator.from_dict(cal.to_dict())
    assert np.allclose(again([0.3, 0.7]), cal([0.3, 0.7]))
    assert C.P_MIN <= cal(-5)[()] and cal(5)[()] <= C.P_MAX
    with pytest.raises(ValueError):
        C.IsotonicCalibrator.fit([], [])


def test_hardest_pairs_take_the_true_and_the_best_wrong_individual():
    per_query = [
        {"cos": {"a": 0.9, "b": 0.7, "c": 0.8}, "inl": {"a": 30, "b": 2, "c": 5}},
        {"cos": {"a": 0.6, "b": 0.5}, "inl": {"a": 1, "b": 9}},
    ]
    pairs = C.hardest_pairs(per_query, ["a", NEW_WHALE], rank_by="cos")
    assert pairs.same.tolist() == [True, False, False]
    assert pairs.scores["cos"].tolist() == [0.9, 0.8, 0.6]
    assert pairs.scores["inl"].tolist() == [30, 5, 1]


def test_logistic_fusion_beats_each_matcher_when_they_carry_independent_evidence():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=3000) < 0.5
    a = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, y.size), 0.01, 0.99)
    b = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, y.size), 0.01, 0.99)
    fusion = C.Fusion.fit_logistic({"a": a, "b": b}, y)
    fused = fusion({"a": a, "b": b})

    def logloss(p):
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    assert logloss(fused) < min(logloss(np.clip(a, 1e-3, 1 - 1e-3)), logloss(np.clip(b, 1e-3, 1 - 1e-3)))
    assert fusion.weights["a"] > 0 and fusion.weights["b"] > 0
    noisy = C.Fusion("noisy_or")({"a": np.array([0.5]), "b": np.array([0.5])})
    assert np.allclose(noisy, 0.75)


def test_match_calibration_ranks_by_fused_probability_and_puts_new_first_when_unsure(tmp_path):
    cal = C.MatchCalibration(
        {"cos": C.IsotonicCalibrator([0.0, 1.0], [0.0, 1.0]), "inl": C.IsotonicCalibrator([0.0, 40.0], [0.0, 1.0])},
        C.Fusion("noisy_or"),
        new_threshold=0.6,
    )
    ranked = cal.rank(["a", "b"], {"cos": [0.3, 0.2], "inl": [0, 36]})
    assert ranked[0][0] == "b" and ranked[1][0] == NEW_WHALE  # the inliers lift b above a
    unsure = cal.rank(["a", "b"], {"cos": [0.3, 0.2], "inl": [0, 0]})
    assert unsure[0][0] == NEW_WHALE and unsure[0][1] == pytest.approx(0.7, abs=0.01)
    cal.save(tmp_path)
    back = C.MatchCalibration.load(tmp_path)
    assert back.rank(["a", "b"], {"cos": [0.3, 0.2], "inl": [0, 36]}) == ranked
    assert C.MatchCalibration.load(tmp_path / "nowhere") is None


def test_tuned_threshold_separates_known_from_new_queries():
    known = [[("a", 0.9), ("b", 0.2)]] * 10
    new = [[("a", 0.3), ("b", 0.1)]] * 10
    th, map5 = C.tune_new_threshold(known + new, ["a"] * 10 + [NEW_WHALE] * 10)
    assert 0.3 < th <= 0.9 and map5 == pytest.approx(1.0)


def test_ece_is_zero_when_calibrated_and_large_when_overconfident(tmp_path):
    rng = np.random.default_rng(2)
    p = rng.uniform(size=20000)
    y = rng.uniform(size=p.size) < p
    assert C.expected_calibration_error(p, y) < 0.02
    assert C.expected_calibration_error(np.full(1000, 0.97), np.zeros(1000, bool)) > 0.9
    out = C.reliability_plot({"calibrated": (p, y)}, tmp_path / "rel.png")
    assert out.stat().st_size > 1000
    assert C.percent_same(0.923) == "92% same individual"


def test_fit_match_calibration_from_validation_queries(tmp_path):
    rng = np.random.default_rng(3)
    labels = [f"w{i}" for i in range(12)]
    per_query, truth = [], []
    for q in range(120):
        t = labels[q % 12] if q % 6 else NEW_WHALE
        cos = {lab: float(rng.uniform(0.2, 0.6)) for lab in labels}
        inl = {lab: int(rng.integers(0, 6)) for lab in labels}
        if t != NEW_WHALE:
            cos[t] = float(rng.uniform(0.45, 0.9))
            inl[t] = int(rng.integers(4, 40))
        per_query.append({"cos": cos, "inl": inl})
        truth.append(t)
    cal = C.fit_match_calibration(per_query, truth)
    assert set(cal.calibrators) == {"cos", "inl"} and cal.fusion.method == "logistic"
    assert cal.fusion.weights["inl"] > 0 and cal.fusion.weights["cos"] > 0
    assert cal.info["new_queries"] == 20 and cal.info["map5_at_threshold"] > 0.6
    p_same = cal.fused({"cos": [0.8], "inl": [30]})[0]
    p_stranger = cal.fused({"cos": [0.55], "inl": [2]})[0]
    assert p_same > 0.8 > 0.5 > p_stranger
    cal.save(tmp_path)
    assert C.MatchCalibration.load(tmp_path).to_dict() == cal.to_dict()


def _few_pairs_with_chance_matches():
    """4 re-sighted queries, no stranger: as a demo's held-out split (issue 10, second round). The true pairs
    have 8-12 inliers, the hardest wrong individual 5-6 chance inliers: one block of 4 positives."""
    per_query, truth = [], []
    for q, (true_inl, wrong_inl) in enumerate([(12, 5), (11, 6), (8, 5), (8, 6)]):
        t = f"w{q}"
        per_query.append({"cos": {t: 0.8, "x": 0.7 - 0.02 * q}, "inl": {t: true_inl, "x": wrong_inl}})
        truth.append(t)
    return per_query, truth


def test_few_pairs_give_a_conservative_inlier_calibration():
    """Without shrinkage 8-12 inliers say P = 0.999 on the strength of 4 pairs; with PSEUDO_PAIRS they say
    (4 + 4 * 0.5) / 8, and many pairs at the same rate barely move."""
    per_query, truth = _few_pairs_with_chance_matches()
    raw = C.fit_match_calibration(per_query, truth, pseudo_count=0)
    cal = C.fit_match_calibration(per_query, truth)
    assert raw.calibrators["inl"]([12])[0] > 0.99
    assert cal.calibrators["inl"]([12])[0] == pytest.approx((4 + 4 * 0.5) / 8)
    assert np.all(np.diff(cal.calibrators["inl"].ps) >= 0)  # still monotone after shrinking
    assert cal.fused({"cos": [0.8], "inl": [12]})[0] < 0.8 < raw.fused({"cos": [0.8], "inl": [12]})[0]
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 4000)
    y = rng.uniform(0, 1, 4000) < s
    assert np.allclose(C.IsotonicCalibrator.fit(s, y, C.PSEUDO_PAIRS)([0.1, 0.9]), [0.1, 0.9], atol=0.08)


def test_without_stranger_queries_new_individual_must_be_beaten_by_more_than_every_mistake():
    per_query, truth = _few_pairs_with_chance_matches()
    cal = C.fit_match_calibration(per_query, truth)
    wrong = [cal.fused({"cos": [s["cos"]["x"]], "inl": [s["inl"]["x"]]})[0] for s in per_query]
    assert cal.info["new_threshold_from"] == "hardest_negative"
    assert cal.new_threshold == pytest.approx(max(0.5, *wrong))
    ranked = cal.rank(["x"], {"cos": [0.7], "inl": [6]})
    assert ranked[0][0] == NEW_WHALE  # a chance match as good as the worst mistake seen: new individual first
