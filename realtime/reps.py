"""Repetition counting per person from the pose track alone, whatever the exercise.

Each person's recent poses (the classify stage's samples, on its clock) are resampled onto a
fixed grid, centred on the hips and scaled by body size (features.py's helpers), plus the hips'
own bounce. Every `UPDATE_S` of media time the period is searched: the lag P at which the last
cycle matches the one before it (a multi-joint correlation over the last 1.75 cycles), so a period
is only accepted once it has held for two cycles, and only for someone who stays in place. The
repetitions are then the peaks of the joints' main direction of motion (their first principal
component), one per period at most; a peak counts once, whichever search finds it.
docs/reps.md has the method's rules and figures.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from .features import BODY_JOINTS, body_size, hip_centre, resample
from .types import KEYPOINT_INDEX, NUM_KEYPOINTS, RepCount

GRID_HZ = 20.0  # 4 samples a cycle at the shortest period; fast enough for 0.25 s repetitions
UPDATE_S = 0.3  # how often the period is searched (a repetition is confirmed as soon as its top is passed)
MIN_SCORE = 0.3  # joints below this confidence are not seen
MAX_GAP_S = 0.6  # joints are interpolated across gaps up to this (brief occlusions)
MIN_CORRELATION = 0.6  # the last cycle vs the one before it
# Share of a cycle compared with the one before: most of it, so that a clip or a set of 1.8 periods is enough.
MATCHED_SHARE = 0.75
MAX_HALF_CORRELATION = 0.2  # half a period apart the motion must differ: a slow drift matches itself at any lag
MIN_AMPLITUDE = 0.25  # body sizes, peak to peak along the main motion: less is stillness or jitter
MAX_TRAVEL = 1.0  # body sizes the hips may move sideways in TRAVEL_WINDOW_S: more is walking or running past
TRAVEL_WINDOW_S = 2.0
MIN_VISIBLE = 0.7  # a joint seen less than this share of the window is left out
SURE_CORRELATION = 0.85  # two cycles this alike are a period at once; weaker ones need two searches to agree
STEADY = 0.25  # how far two searches' periods may differ and still agree
MAX_SIZE_CHANGE = 1.4  # torso length across two cycles, 90th over 10th percentile
FALL = 0.65  # of the motion's spread below its top: the top is passed, confirm it at once


_HIPS = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])
_SHOULDERS = [KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"]]
_FACE = np.setdiff1d(np.arange(NUM_KEYPOINTS), BODY_JOINTS)


@dataclass(frozen=True)
class RepSettings:
    min_period_s: float = 0.25
    max_period_s: float = 4.0


DEFAULT_SETTINGS = RepSettings()


class RepCounter:
    """One person's repetitions, fed every posed sample."""

    def __init__(self, settings: RepSettings = DEFAULT_SETTINGS, carry_s: float = 0.0) -> None:
        self.settings = settings
        # The classifier names an action a window after it starts: repetitions this recent carry over to it.
        self.carry_s = carry_s
        self._horizon_s = 2.0 * settings.max_period_s + 2.0 / GRID_HZ
        self._samples: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._last_update = float("-inf")
        self._period_s: float | None = None
        self._axis: np.ndarray | None = None
        self._active = float("-inf")  # the last counted peak, or when the period was found
        self._last_peak = float("-inf")
        self._recent: deque[float] = deque()  # peaks within carry_s, for a new action to take over
        self._run = 0
        self._total = 0
        self._label: str | None = None
        self._joints: list[int] = []  # what the last signal was made of
        self._scale = 1.0
        self._watch: _Watch | None = None
        self._sizes = np.zeros(0)  # torso length per grid sample of the last signal
        self._candidate: int | None = None  # the period the last search found
        self._strength = 0.0  # and how well its two cycles matched

    @property
    def count(self) -> RepCount:
        return RepCount(self._run, self._total, self._period_s)

    def add(self, t: float, keypoints: np.ndarray, scores: np.ndarray) -> None:
        if self._samples and t <= self._samples[-1][0]:
            return
        self._samples.append((t, np.asarray(keypoints, np.float32), np.asarray(scores, np.float32)))
        while len(self._samples) > 2 and self._samples[1][0] < t - self._horizon_s:
            self._samples.popleft()
        if t - self._last_update >= UPDATE_S or self._fell(keypoints, scores):
            self._last_update = t
            self._update(t)

    def _fell(self, keypoints: np.ndarray, scores: np.ndarray) -> bool:
        """Whether this sample is well past a top along the motion being counted: a repetition to confirm
        now rather than at the next search, so the count follows the movement closely (and a clip's last
        repetition is not lost)."""
        watch = self._watch
        if watch is None:
            return False
        value = watch.value(keypoints, scores)
        if value is None:
            return False
        watch.top = max(watch.top, value)
        if watch.top - value < FALL * watch.spread:
            return False
        self._watch = None  # one look per top
        return True

    def set_label(self, label: str | None, t: float) -> None:
        """The person's shown action; a new one starts a new run with the repetitions it was named from."""
        if label == self._label:
            return
        if self._label is not None:
            self._run = sum(1 for peak in self._recent if peak >= t - self.carry_s)
        self._label = label

    def _update(self, now: float) -> None:
        if self._period_s is not None and now - self._active > 2.0 * self._period_s:
            self._stop()  # stopped for two periods: the run is over
        signal, grid = self._signal(now)
        if signal is None:
            return
        period = self._find_period(signal)
        candidate, self._candidate = self._candidate, period
        if period is None:
            return
        # A period is taken once two searches in a row agree on it (a cut or a stumble matches itself once),
        # or at once when the two cycles are nearly the same.
        steady = candidate is not None and abs(period - candidate) <= STEADY * candidate
        if self._period_s is None and not steady and self._strength < SURE_CORRELATION:
            return
        if self._period_s is None:
            self._active = now
        self._period_s = period / GRID_HZ
        self._count_peaks(signal, grid, period)

    def _stop(self) -> None:
        self._period_s = None
        self._axis = None
        self._watch = None
        self._run = 0

    def _signal(self, now: float) -> tuple[np.ndarray | None, np.ndarray]:
        """Channels (C, N) on the grid ending now: joints around the hips and the hips' rise, in body sizes."""
        start = max(self._samples[0][0], now - self._horizon_s)
        grid = now - np.arange(int((now - start) * GRID_HZ), -1, -1) / GRID_HZ
        if len(grid) < 2 * round(self.settings.min_period_s * GRID_HZ) or len(self._samples) < 4:
            return None, grid
        times = np.fromiter((s[0] for s in self._samples), np.float64, len(self._samples))
        kp = np.stack([s[1] for s in self._samples])
        visible = np.stack([s[2] for s in self._samples]) >= MIN_SCORE
        visible[:, _FACE] = False  # not counted, so not resampled
        kp, seen = resample(times, kp, visible, grid, MAX_GAP_S)
        joints = [j for j in BODY_JOINTS if seen[:, j].mean() >= MIN_VISIBLE]
        if len(joints) < 4:
            return None, grid
        centre = hip_centre(kp, seen)
        scale = body_size(kp, seen)
        self._joints, self._scale = joints, scale
        self._sizes = np.linalg.norm(kp[:, _SHOULDERS].mean(axis=1) - kp[:, list(_HIPS)].mean(axis=1), axis=1)
        around_hips = (kp[:, joints] - centre[:, None, :]) / scale
        channels = np.concatenate(
            [around_hips.reshape(len(grid), -1), centre[:, 1:] / scale, centre[:, :1] / scale], axis=1
        ).T
        # The last row (the hips' sideways position) only tells walking past apart; it is not motion to count.
        return channels, grid

    def _find_period(self, signal: np.ndarray) -> int | None:
        """The shortest lag (grid samples) at which the last cycle repeats the one before it, or None."""
        motion, sideways = signal[:-1], signal[-1]
        n = motion.shape[1]
        shortest = max(2, round(self.settings.min_period_s * GRID_HZ))
        longest = min(round(self.settings.max_period_s * GRID_HZ), int(n / (1 + MATCHED_SHARE)))
        if longest < shortest:
            return None
        scores = np.full(longest + 2, -1.0)
        scores[shortest : longest + 1] = _lag_correlations(motion, np.arange(shortest, longest + 1))
        peaks = [
            lag
            for lag in range(shortest, longest + 1)
            if scores[lag] >= MIN_CORRELATION
            and scores[lag] >= scores[lag - 1]
            and (lag == longest or scores[lag] >= scores[lag + 1])
        ]
        # The shortest of the near-best: two or three cycles match as well as one does.
        best = next((lag for lag in peaks if scores[lag] >= max(scores[p] for p in peaks) - 0.15), None)
        if best is None:
            return None
        last = motion[:, n - best :]
        if float(np.ptp(last, axis=1).max()) < MIN_AMPLITUDE / 2:
            return None  # the last cycle hardly moves: holding still matches itself too
        half = best // 2
        if _correlation(motion[:, n - best - half : n - half], last) > MAX_HALF_CORRELATION:
            return None
        # Walking past repeats too, but it travels: over the last two cycles (two seconds at least) the hips
        # must stay within a body size or so sideways. Measured as a range, as a walker leaving the picture
        # sticks at its edge.
        recent = sideways[max(0, n - max(2 * best, round(TRAVEL_WINDOW_S * GRID_HZ))) :]
        travel = float(recent.max() - recent.min())
        # A cut to another shot (a close-up) or someone coming at the camera changes the body's size.
        sizes = self._sizes[n - min(n, 2 * best) :]
        if float(np.percentile(sizes, 90)) > MAX_SIZE_CHANGE * float(np.percentile(sizes, 10)):
            return None
        if travel > MAX_TRAVEL:
            return None
        self._strength = float(scores[best])
        return best

    def _count_peaks(self, signal: np.ndarray, grid: np.ndarray, period: int) -> None:
        motion = signal[:-1]
        n = motion.shape[1]
        # Two cycles and a half, and on finding the period the searches it took to agree on it too.
        reach = 2 * period + period // 2 + (round(2 * UPDATE_S * GRID_HZ) if self._watch is None else 0)
        segment = motion[:, max(0, n - reach) :]
        centred = segment - segment.mean(axis=1, keepdims=True)
        axis = _main_direction(centred)
        if self._axis is not None and len(self._axis) == len(axis) and float(axis @ self._axis) < 0:
            axis = -axis  # the same motion as before, whichever sign the decomposition gave
        projected = axis @ centred
        new_motion = self._axis is None or len(self._axis) != len(axis)
        # Count the far end of the motion from where the run began (a person starts from rest), not the rest.
        if new_motion and projected[0] > (projected.max() + projected.min()) / 2:
            axis, projected = -axis, -projected
        self._axis = axis
        width = max(1, period // 5)
        smooth = np.convolve(projected, np.ones(width) / width, mode="same")
        spread = float(np.percentile(smooth, 95) - np.percentile(smooth, 5))
        if spread < MIN_AMPLITUDE:
            return
        self._watch = _Watch(self._joints, self._scale, axis, segment.mean(axis=1), spread)
        peaks, _ = find_peaks(smooth, distance=max(1, int(0.6 * period)), prominence=0.4 * spread)
        times = grid[len(grid) - len(smooth) :][peaks]
        guard = 0.6 * period / GRID_HZ
        for t in times:
            if t > self._last_peak + guard:
                self._last_peak = self._active = float(t)
                self._run += 1
                self._total += 1
                self._recent.append(float(t))
        while self._recent and self._recent[0] < float(grid[-1]) - self.carry_s:
            self._recent.popleft()


@dataclass
class _Watch:
    """The counted motion, to place single samples on it between searches."""

    joints: list[int]
    scale: float
    axis: np.ndarray
    mean: np.ndarray
    spread: float
    top: float = float("-inf")

    def value(self, keypoints: np.ndarray, scores: np.ndarray) -> float | None:
        """Where a sample lies along the motion; None when a joint of it is not seen."""
        if (scores[self.joints] < MIN_SCORE).any() or (scores[list(_HIPS)] < MIN_SCORE).any():
            return None
        centre = keypoints[list(_HIPS)].mean(axis=0)
        channels = np.concatenate([((keypoints[self.joints] - centre) / self.scale).ravel(), centre[1:] / self.scale])
        return float(self.axis @ (channels - self.mean))


def _lag_correlations(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """`_correlation` of the last MATCHED_SHARE of a lag with the same stretch a lag earlier, for every lag at once.

    From running sums and one Gram matrix of the samples, so the search costs a few array operations
    rather than a few per lag.
    """
    n = x.shape[1]
    widths = np.maximum(2, np.round(MATCHED_SHARE * lags)).astype(int)
    sums = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    squares = np.concatenate([[0.0], np.cumsum((x * x).sum(axis=0))])
    b_sum = sums[:, n, None] - sums[:, n - widths]  # (C, lags)
    a_sum = sums[:, n - lags] - sums[:, n - lags - widths]
    b_sq = squares[n] - squares[n - widths]
    a_sq = squares[n - lags] - squares[n - lags - widths]
    gram = x.T @ x
    offsets = np.arange(widths.max())
    t = n - 1 - offsets[None, :]  # the last `width` samples, newest first
    inside = offsets[None, :] < widths[:, None]
    t = np.where(inside, t, n - 1)
    cross = np.where(inside, gram[t, t - lags[:, None]], 0.0).sum(axis=1)
    a_var = a_sq - (a_sum * a_sum).sum(axis=0) / widths
    b_var = b_sq - (b_sum * b_sum).sum(axis=0) / widths
    covariance = cross - (a_sum * b_sum).sum(axis=0) / widths
    denominator = np.sqrt(np.maximum(a_var * b_var, 0.0))
    return np.where(denominator > 1e-9, covariance / np.maximum(denominator, 1e-12), -1.0)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """How alike two stretches of all channels are, 1 = the same motion (means removed per channel)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 1e-9 else -1.0


def _main_direction(centred: np.ndarray) -> np.ndarray:
    """The unit direction of the channels' largest variance (first principal component)."""
    covariance = centred @ centred.T
    _, vectors = np.linalg.eigh(covariance)
    return vectors[:, -1]
