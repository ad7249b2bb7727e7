"""From raw matcher scores to P(same individual), a fused ranking and the "new individual" decision.

Why: a raw cosine says nothing a scientist can read, and its meaning moves with the model (issue 10:
strangers at 0.97 and a tuned threshold of 0.975 that called nearly every unseen whale new). Each
matcher's score (cosine, RANSAC inliers) is mapped to a probability by isotonic regression fitted on
pairs from *validation individuals the model never trained on*: for every validation query, the
pair with its true individual (positive) and with the best-scoring wrong individual (the hardest
negative, which is what ranks first when the model errs). Probabilities of several matchers are
fused (noisy-or, or a logistic on their log-odds fitted on the same pairs), the gallery is ranked
by the fused probability, and "new individual" goes first when the best probability is below a
threshold tuned on validation individuals too. Everything serialises to JSON for the model folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.metrics import NEW_WHALE

P_MIN, P_MAX = 1e-3, 1 - 1e-3  # no matcher is ever certain: keeps log-odds finite
# Pseudo-pairs at the base rate added to every isotonic block, and the fusion's ridge (issue 10, second round):
# a demo calibration fitted on 4 re-sighted whales put P 0.67-1.0 on 8 and 11 RootSIFT inliers because one or
# two pairs had them, and a real photo's chance keypoint match on a synthetic one then read "85% same". With
# 4 pseudo-pairs such a block says at most (2 + 4 * 0.5) / 6 = 0.67; with hundreds of pairs it barely moves.
PSEUDO_PAIRS = 4.0
# Without stranger queries the MAP-tuned threshold cannot be fitted: new individual goes first unless a
# candidate's P beats every wrong individual's on validation (the hardest negatives), and never below this.
FALLBACK_NEW_THRESHOLD = 0.5
CALIBRATION_FILE = "calibration.json"


# --------------------------------------------------------------------------- isotonic regression
def pool_adjacent_violators(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Non-decreasing least-squares fit to ``y`` (already sorted by score), weights ``w``."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    means, weights, counts = [], [], []
    for yi, wi in zip(y, w):
        means.append(yi)
        weights.append(wi)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, c2 = means.pop(), weights.pop(), counts.pop()
            m1, w1, c1 = means.pop(), weights.pop(), counts.pop()
            means.append((m1 * w1 + m2 * w2) / (w1 + w2))
            weights.append(w1 + w2)
            counts.append(c1 + c2)
    return np.repeat(means, counts)


@dataclass
class IsotonicCalibrator:
    """Monotone map score -> probability: linear between the fitted blocks' (score, p) knots,
    constant beyond them, clipped to [P_MIN, P_MAX]."""

    xs: list[float] = field(default_factory=list)
    ps: list[float] = field(default_factory=list)

    @classmethod
    def fit(
        cls, scores: Sequence[float] | np.ndarray, same: Sequence[bool] | np.ndarray, pseudo_count: float = 0.0
    ) -> IsotonicCalibrator:
        """PAV on the pairs; ``pseudo_count`` > 0 then shrinks each block's frequency toward the pairs' base rate
        as if ``pseudo_count`` more pairs at that rate had fallen in it, (n p + a prior) / (n + a), and re-pools:
        a block of 2 pairs that were both "same" says 1.0 only by chance, a block of 200 barely moves."""
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(same, dtype=np.float64)
        if len(s) == 0 or len(s) != len(y):
            raise ValueError("isotonic calibration needs as many labels as scores, at least one")
        order = np.argsort(s, kind="mergesort")
        s, y = s[order], y[order]
        fitted = pool_adjacent_violators(y)
        xs, ps, ns = [], [], []
        for value in np.unique(fitted):  # one knot at the centre of each constant block
            block = s[fitted == value]
            xs.append(float(block.mean()))
            ps.append(float(value))
            ns.append(float(len(block)))
        order = np.argsort(xs)
        xs, ps, ns = [xs[i] for i in order], [ps[i] for i in order], [ns[i] for i in order]
        if pseudo_count > 0:
            n, a = np.asarray(ns), float(pseudo_count)
            shrunk = (n * np.asarray(ps) + a * float(y.mean())) / (n + a)
            ps = [float(v) for v in pool_adjacent_violators(shrunk, n + a)]  # shrinking can break monotony
        return cls(xs, ps)

    def __call__(self, scores) -> np.ndarray:
        p = np.interp(np.asarray(scores, dtype=np.float64), self.xs, self.ps)
        return np.clip(p, P_MIN, P_MAX)

    def to_dict(self) -> dict:
        return {"xs": self.xs, "ps": self.ps}

    @classmethod
    def from_dict(cls, d: Mapping) -> IsotonicCalibrator:
        return cls(list(map(float, d["xs"])), list(map(float, d["ps"])))


# --------------------------------------------------------------------------- validation pairs
@dataclass(frozen=True)
class Pairs:
    """Scores of (query, individual) pairs with their truth, one array per matcher."""

    scores: dict[str, np.ndarray]
    same: np.ndarray  # bool


def hardest_pairs(per_query: Sequence[Mapping[str, Mapping[str, float]]], truth: Sequence[str], rank_by: str) -> Pairs:
    """Positive and hardest-negative pairs. ``per_query[i][matcher][label]`` is query i's score for
    one individual (best over its photos); the hardest negative is the wrong individual that
    ``rank_by`` scores highest. Queries of new individuals give a hardest negative only."""
    matchers = list(per_query[0]) if per_query else [rank_by]
    out: dict[str, list[float]] = {m: [] for m in matchers}
    same: list[bool] = []
    for scores, t in zip(per_query, truth):
        wrong = [lab for lab in scores[rank_by] if lab != t]
        picks = ([(t, True)] if t in scores[rank_by] else []) + (
            [(max(wrong, key=lambda lab: scores[rank_by][lab]), False)] if wrong else []
        )
        for label, is_same in picks:
            for m in matchers:
                out[m].append(float(scores[m].get(label, 0.0)))
            same.append(is_same)
    return Pairs({m: np.asarray(v) for m, v in out.items()}, np.asarray(same, dtype=bool))


# --------------------------------------------------------------------------- fusion
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, P_MIN, P_MAX)
    return np.log(p / (1 - p))


@dataclass
class Fusion:
    """Combine matchers' probabilities: ``"noisy_or"`` (1 - prod(1 - p): any matcher that is sure
    is enough) or ``"logistic"`` (sigmoid(b + sum w_i logit(p_i)), weights fitted on validation
    pairs: learns how much each matcher's confidence is worth beside the others)."""

    method: str = "logistic"
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0

    def __call__(self, probs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.method == "noisy_or":
            q = np.ones_like(next(iter(probs.values())), dtype=np.float64)
            for p in probs.values():
                q = q * (1 - np.clip(p, P_MIN, P_MAX))
            return np.clip(1 - q, P_MIN, P_MAX)
        if self.method == "logistic":
            z = np.full_like(np.asarray(next(iter(probs.values())), dtype=np.float64), self.bias)
            for m, w in self.weights.items():
                z = z + w * _logit(np.asarray(probs[m], dtype=np.float64))
            return np.clip(1 / (1 + np.exp(-z)), P_MIN, P_MAX)
        raise ValueError(f"unknown fusion {self.method!r}: 'noisy_or' or 'logistic'")

    @classmethod
    def fit_logistic(
        cls, probs: Mapping[str, np.ndarray], same: np.ndarray, l2: float = 1e-2, steps: int = 50
    ) -> Fusion:
        """Newton's method on the L2-regularised log-loss (a handful of features: exact and fast). A fixed
        ``l2`` weighs more against few pairs than many: with ``PSEUDO_PAIRS`` it keeps a fusion fitted on a
        handful of pairs from scaling the (shrunk) matchers' log-odds back up to certainty."""
        names = list(probs)
        x = np.stack([_logit(np.asarray(probs[m], dtype=np.float64)) for m in names], axis=1)
        x = np.concatenate([np.ones((len(x), 1)), x], axis=1)
        y = np.asarray(same, dtype=np.float64)
        beta = np.zeros(x.shape[1])
        reg = l2 * np.eye(x.shape[1])
        reg[0, 0] = 0.0
        for _ in range(steps):
            p = 1 / (1 + np.exp(-x @ beta))
            grad = x.T @ (p - y) + reg @ beta
            hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(x.shape[1])
            step = np.linalg.solve(hess, grad)
            beta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls("logistic", {m: float(b) for m, b in zip(names, beta[1:])}, float(beta[0]))


# --------------------------------------------------------------------------- the model folder's calibration
@dataclass
class MatchCalibration:
    """Per-matcher calibrators, their fusion and the new-individual threshold on the fused P."""

    calibrators: dict[str, IsotonicCalibrator]
    fusion: Fusion
    new_threshold: float = 0.5
    info: dict = field(default_factory=dict)  # how it was fitted (pairs, individuals, ECE ...)

    @property
    def prior(self) -> float:
        """P(same individual) with no evidence: the share of positives among the fitted pairs (0.5, as likely
        as not, for calibrations fitted before it was recorded)."""
        return float(self.info.get("prior", 0.5))

    def probabilities(self, scores: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, np.ndarray]:
        return {m: self.calibrators[m](scores[m]) for m in self.calibrators if m in scores}

    def fused(self, scores: Mapping[str, Sequence[float] | np.ndarray], untrusted: Sequence[str] = ()) -> np.ndarray:
        """The fused P of each candidate. ``untrusted``: matchers whose evidence is left out (an
        out-of-distribution query's cosine, ``ml.ood``): one matcher left gives its own calibrated P, none
        left gives the prior for every candidate."""
        probs = {m: p for m, p in self.probabilities(scores).items() if m not in untrusted}
        if not probs:
            n = len(np.atleast_1d(np.asarray(next(iter(scores.values())))))
            return np.full(n, self.prior)
        if len(probs) == 1:
            return next(iter(probs.values()))
        lo, hi = self.supported_range(list(probs))
        return np.clip(self.fusion(probs), lo, hi)

    def supported_range(self, matchers: Sequence[str]) -> tuple[float, float]:
        """The fused P's bounds: no lower or higher than the matchers' calibrators reach. A fusion fitted on a
        handful of pairs can multiply two shrunk log-odds into certainty the pairs never showed (two 0.75s
        fused to 0.84 on 4 re-sighted whales); bounded, fusion re-orders candidates but claims no more than the
        best-supported block of one matcher. With many pairs the bounds are the calibrators' P_MIN..P_MAX."""
        cals = [self.calibrators[m] for m in matchers if m in self.calibrators and self.calibrators[m].ps]
        if not cals:
            return P_MIN, P_MAX
        lo = max(P_MIN, min(min(c.ps) for c in cals))
        hi = min(P_MAX, max(max(c.ps) for c in cals))
        return lo, hi

    def rank(
        self, candidates: Sequence[str], scores: Mapping[str, Sequence[float]], k: int = 5
    ) -> list[tuple[str, float]]:
        """Candidates by fused P, ``new_whale`` (with P = 1 - best P) inserted first when the best
        P is below the threshold, cut to ``k``."""
        p = self.fused(scores)
        order = np.argsort(-p, kind="mergesort")
        ranked = [(candidates[i], float(p[i])) for i in order]
        return insert_new(ranked, self.new_threshold, k)

    def to_dict(self) -> dict:
        return {
            "calibrators": {m: c.to_dict() for m, c in self.calibrators.items()},
            "fusion": asdict(self.fusion),
            "new_threshold": self.new_threshold,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> MatchCalibration:
        return cls(
            {m: IsotonicCalibrator.from_dict(c) for m, c in d["calibrators"].items()},
            Fusion(**d["fusion"]),
            float(d["new_threshold"]),
            dict(d.get("info", {})),
        )

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> MatchCalibration | None:
        path = Path(model_dir) / CALIBRATION_FILE
        return cls.from_dict(json.loads(path.read_text())) if path.is_file() else None


def insert_new(ranked: Sequence[tuple[str, float]], threshold: float, k: int = 5) -> list[tuple[str, float]]:
    """``new_whale`` first when the best probability is below ``threshold``, else after the
    candidates at or above it; its own probability is 1 - the best candidate's."""
    best = ranked[0][1] if ranked else 0.0
    pos = sum(1 for _, p in ranked if p >= threshold)
    out = list(ranked[:pos]) + [(NEW_WHALE, 1.0 - best)] + list(ranked[pos:])
    return out[:k]


def tune_new_threshold(
    fused_rankings: Sequence[Sequence[tuple[str, float]]], truth: Sequence[str], k: int = 5
) -> tuple[float, float]:
    """The fused-P threshold that maximises MAP@k on validation individuals, and that MAP@k.

    ``ml.metrics.select_new_threshold``, the guarded chooser training uses for cosines: the middle of the
    widest MAP-maximising plateau, kept within the top-1 P's 5%..95%, and P = 0.5 (as likely the same
    whale as not) when fewer than two queries of either kind were seen."""
    from ml.metrics import select_new_threshold

    choice = select_new_threshold(fused_rankings, truth, min_new=2, min_known=2, default=0.5, k=k)
    return choice.threshold, float(choice.map5) if choice.map5 is not None else 0.0


def hardest_negative_bound(rankings: Sequence[Sequence[tuple[str, float]]], truth: Sequence[str]) -> float:
    """The new-individual threshold when validation had no stranger queries to tune it on: the highest fused P
    any *wrong* individual reached (at least ``FALLBACK_NEW_THRESHOLD``, at most ``P_MAX``). "New individual"
    then goes first unless a candidate is more convincing than every mistake the calibration has seen; the
    old fallback, 0.5, let any candidate the calibration found more likely than not outrank it."""
    wrong = [p for ranked, t in zip(rankings, truth) for lab, p in ranked if lab != t]
    return float(min(P_MAX, max([FALLBACK_NEW_THRESHOLD, *wrong])))


def fit_match_calibration(
    per_query: Sequence[Mapping[str, Mapping[str, float]]],
    truth: Sequence[str],
    fusion: str = "logistic",
    pseudo_count: float = PSEUDO_PAIRS,
) -> MatchCalibration:
    """Everything a model folder needs, from validation queries of individuals never trained on.

    ``per_query[i][matcher][label]``: query i's score for each gallery individual (``"cos"``: max
    cosine over its photos; ``"inl"``: most RANSAC inliers, 0 outside the embedding shortlist, as
    at query time). One isotonic calibrator per matcher on its own positive + hardest-negative
    pairs, each block shrunk by ``pseudo_count`` pairs toward the base rate (``PSEUDO_PAIRS``: few pairs give
    a conservative P); the logistic fusion on both matchers' hardest negatives with ridge ``pseudo_count``; the
    new-individual threshold on the fused P that maximises MAP@5, or without stranger queries
    ``hardest_negative_bound``.
    """
    if not per_query:
        raise ValueError("fit_match_calibration needs validation queries")
    matchers = list(per_query[0])
    pairs = {m: hardest_pairs(per_query, truth, rank_by=m) for m in matchers}
    cals = {m: IsotonicCalibrator.fit(pairs[m].scores[m], pairs[m].same, pseudo_count) for m in matchers}
    cal = MatchCalibration(cals, Fusion("noisy_or"))
    if len(matchers) > 1 and fusion == "logistic":
        probs = {m: np.concatenate([cals[m](pairs[r].scores[m]) for r in matchers]) for m in matchers}
        same = np.concatenate([pairs[r].same for r in matchers])
        cal.fusion = Fusion.fit_logistic(probs, same, l2=max(1e-2, pseudo_count))
    rankings = []
    for scores in per_query:
        labels = list(scores[matchers[0]])
        p = cal.fused({m: [scores[m].get(lab, 0.0) for lab in labels] for m in matchers})
        rankings.append(sorted(zip(labels, p.tolist()), key=lambda t: -t[1]))
    cal.new_threshold, map5 = tune_new_threshold(rankings, truth)
    if sum(t == NEW_WHALE for t in truth) < 2:  # no strangers to tune on: beat every wrong whale seen instead
        cal.new_threshold = hardest_negative_bound(rankings, truth)
    cos_pairs = pairs[matchers[0]].same
    cal.info = {
        "prior": float(cos_pairs.mean()) if len(cos_pairs) else 0.5,
        "queries": len(truth),
        "new_queries": sum(t == NEW_WHALE for t in truth),
        "pairs": {m: int(len(pairs[m].same)) for m in matchers},
        "map5_at_threshold": map5,
        "fusion": cal.fusion.method,
        "pseudo_pairs": float(pseudo_count),
        "new_threshold_from": "map5" if sum(t == NEW_WHALE for t in truth) >= 2 else "hardest_negative",
    }
    return cal


# --------------------------------------------------------------------------- calibration quality
@dataclass(frozen=True)
class Reliability:
    """Per-bin mean predicted P, observed frequency and count; ECE = count-weighted |gap|."""

    mean_p: np.ndarray
    freq: np.ndarray
    count: np.ndarray
    ece: float


def reliability(probs: Sequence[float], same: Sequence[bool], bins: int = 10) -> Reliability:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, p, bins) / count
        freq = np.bincount(idx, y, bins) / count
    gaps = np.where(count > 0, np.abs(mean_p - freq), 0.0)
    ece = float((gaps * count).sum() / max(1.0, count.sum()))
    return Reliability(mean_p, freq, count, ece)


def expected_calibration_error(probs: Sequence[float], same: Sequence[bool], bins: int = 10) -> float:
    return reliability(probs, same, bins).ece


def reliability_plot(
    curves: Mapping[str, tuple[Sequence[float], Sequence[bool]]],
    path: str | Path,
    bins: int = 10,
    title: str = "Reliability",
) -> Path:
    """One line per matcher (predicted P vs observed frequency of 'same individual'), ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name, (p, y) in curves.items():
        r = reliability(p, y, bins)
        ok = r.count > 0
        ax.plot(r.mean_p[ok], r.freq[ok], marker="o", label=f"{name} (ECE {r.ece:.3f})")
    ax.set_xlabel("predicted P(same individual)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def percent_same(p: float) -> str:
    """What the review page shows: '92% same individual'."""
    return f"{round(100 * float(p))}% same individual"


__all__ = [
    "pool_adjacent_violators",
    "IsotonicCalibrator",
    "Pairs",
    "hardest_pairs",
    "Fusion",
    "MatchCalibration",
    "fit_match_calibration",
    "insert_new",
    "hardest_negative_bound",
    "PSEUDO_PAIRS",
    "tune_new_threshold",
    "Reliability",
    "reliability",
    "expected_calibration_error",
    "reliability_plot",
    "percent_same",
    "CALIBRATION_FILE",
]
