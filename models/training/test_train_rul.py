#!/usr/bin/env python3
"""Unit tests of the training pipeline's pure parts (numpy only, no TensorFlow): what the
exported models and their sidecars depend on besides the networks — regimes and normalisation
(mirrored in Rust), windows and labels, the window summaries, the calibration map and the form
it takes in the graph, the conformal quantile and the scores.

    python3 -m unittest discover -s models/training -p 'test_*.py'

Run by scripts/test.sh (with the pinned numpy of requirements.txt).
"""
import sys
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_rul as T  # noqa: E402


def table(units: list[int], n_cycles: list[int], regimes: np.ndarray, seed: int = 0) -> np.ndarray:
    """A C-MAPSS-shaped table: each unit's settings drawn near one of `regimes`; sensors 1 and 2
    vary, sensor 3 takes two values only, the others are constant; each regime offsets them."""
    rng = np.random.default_rng(seed)
    rows = []
    for u, n in zip(units, n_cycles):
        for c in range(1, n + 1):
            r = rng.integers(len(regimes))
            settings = regimes[r] + rng.normal(0, 0.01, 3)
            sensors = np.full(21, 5.0)
            sensors[0] = 100.0 * r + rng.normal(0, 1)
            sensors[1] = 10.0 * r + 0.1 * c + rng.normal(0, 0.5)
            sensors[2] = float(c % 2)
            rows.append(np.concatenate([[u, c], settings, sensors]))
    return np.array(rows)


class Regimes(unittest.TestCase):
    def test_one_condition_is_one_regime_and_six_are_six(self):
        one = np.zeros((1, 3))
        self.assertEqual(len(T.fit_regimes(table([1], [200], one)[:, 2:5])), 1)
        # the six conditions of FD002 / FD004 (altitude in kft, Mach, throttle resolver angle)
        six = np.array([[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]],
                       dtype=np.float64)
        centroids = T.fit_regimes(table([1, 2], [300, 300], six)[:, 2:5])
        self.assertEqual(len(centroids), 6)
        # each true condition is found: its nearest centroid lies within the regime radius
        for s in six:
            self.assertLess(np.sqrt(((centroids - s) ** 2).sum(-1)).min(), T.REGIME_RADIUS)

    def test_the_normaliser_keeps_varying_sensors_and_z_scores_them_per_regime(self):
        regimes = np.array([[0, 0, 100], [20, 0.7, 100]], dtype=np.float64)
        train = table([1, 2, 3], [150, 150, 150], regimes)
        norm = T.fit_normaliser(train)
        # sensor 3 takes two values, the rest are constant: only sensors 1 and 2 are kept
        self.assertEqual(norm["keep"], [0, 1])
        z = T.normalise(train, norm)
        self.assertEqual(z.shape, (450, 2))
        self.assertEqual(z.dtype, np.float32)
        reg = T.assign_regimes(train[:, 2:5], norm["centroids"])
        for r in range(2):
            np.testing.assert_allclose(z[reg == r].mean(0), 0.0, atol=1e-5)
            np.testing.assert_allclose(z[reg == r].std(0), 1.0, atol=1e-4)
        # the 24-column form (settings + sensors) gives the same values
        np.testing.assert_array_equal(T.normalise(train[:, 2:], norm), z)

    def test_engines_must_have_consecutive_cycles(self):
        t = table([1, 2], [5, 4], np.zeros((1, 3)))
        self.assertEqual([len(e) for e in T.engines(t)], [5, 4])
        t[2, 1] = 9
        with self.assertRaises(ValueError):
            T.engines(t)


class Windows(unittest.TestCase):
    def setUp(self):
        self.saved = (T.WINDOW, T.BASELINE)
        T.WINDOW, T.BASELINE = 5, 0

    def tearDown(self):
        T.WINDOW, T.BASELINE = self.saved

    def test_a_short_history_is_front_padded_with_its_first_row(self):
        z = np.arange(6, dtype=np.float32).reshape(3, 2)
        w = T.last_window(z, 2)
        np.testing.assert_array_equal(w, np.array([[0, 1], [0, 1], [0, 1], [2, 3], [4, 5]], np.float32))
        z = np.arange(20, dtype=np.float32).reshape(10, 2)
        np.testing.assert_array_equal(T.last_window(z, 7), z[3:8])

    def test_the_baseline_uses_nothing_after_the_cut_point(self):
        T.BASELINE = 3
        z = np.array([[1.0], [3.0], [5.0], [100.0]], np.float32)
        w = T.last_window(z, 1)  # two rows seen: baseline = mean(1, 3) = 2
        self.assertEqual(w.shape, (5, 2))
        np.testing.assert_array_equal(w[:, 1], w[:, 0] - 2.0)
        w = T.last_window(z, 3)  # the first three rows: mean 3, not the 100 of the fourth
        np.testing.assert_array_equal(w[-1], [100.0, 97.0])

    def test_cropped_windows_look_like_short_engines_padded_and_keep_their_labels(self):
        z = np.arange(1, 21, dtype=np.float32).reshape(20, 1)
        x, capped, true = T.windows_of([z], full_only=True)
        xa, ca, ta = T.cropped(x, capped, true, 0.5, seed=0)
        self.assertEqual(len(xa), len(x) + round(0.5 * len(x)))
        np.testing.assert_array_equal(xa[: len(x)], x)
        for w, c, t in zip(xa[len(x):], ca[len(x):], ta[len(x):]):
            original = np.flatnonzero((x[:, -1, 0] == w[-1, 0]))[0]
            self.assertEqual((c, t), (capped[original], true[original]))
            # rows 0..k-1 repeat row k, the first row kept (1 <= k < WINDOW); the rest is kept
            differs = np.flatnonzero(w[:, 0] != w[0, 0])
            k = (int(differs[0]) if len(differs) else len(w)) - 1
            self.assertGreaterEqual(k, 1)
            np.testing.assert_array_equal(w[k:], x[original][k:])
            np.testing.assert_array_equal(w[:k], np.repeat(x[original][k:k + 1], k, axis=0))

    def test_every_cut_point_is_labelled_with_its_capped_and_true_rul(self):
        z = np.zeros((200, 1), np.float32)
        x, capped, true = T.windows_of([z], full_only=False)
        self.assertEqual(x.shape, (200, 5, 1))
        self.assertEqual(true[0], 199.0)
        self.assertEqual(capped[0], T.LABEL_CAP)
        self.assertEqual((true[-1], capped[-1]), (0.0, 0.0))
        _, _, full = T.windows_of([z], full_only=True)
        self.assertEqual(len(full), 200 - 4)


class Summaries(unittest.TestCase):
    def setUp(self):
        self.saved = T.SUMMARIES

    def tearDown(self):
        T.SUMMARIES = self.saved

    def test_the_summary_filters_measure_level_slope_and_last_value(self):
        for version, k in (("v1", 5), ("v2", 8)):
            T.SUMMARIES = version
            f = T.summary_filters(50)
            self.assertEqual(f.shape, (50, k))
            t = np.arange(50, dtype=np.float64)
            line = 3.0 + 0.5 * t
            got = line @ f
            self.assertAlmostEqual(got[0], line.mean(), places=4)
            self.assertAlmostEqual(got[1], line[-10:].mean(), places=4)
            self.assertAlmostEqual(got[2], 0.5, places=5)  # slope over the window
            self.assertAlmostEqual(got[3], 0.5, places=5)  # slope over its last 20
            self.assertAlmostEqual(got[4], line[-1], places=4)
            if version == "v2":
                self.assertAlmostEqual(got[7], 0.0, places=5)  # a line has no curvature
                parabola = 0.25 * (t - 10.0) ** 2
                self.assertAlmostEqual(float(parabola @ f[:, 7]), 0.25, places=4)
        T.SUMMARIES = "v3"
        with self.assertRaises(ValueError):
            T.summary_filters(50)


class Calibration(unittest.TestCase):
    def test_the_map_corrects_a_biased_output_and_never_decreases(self):
        rng = np.random.default_rng(1)
        true = rng.uniform(0, 200, 5000)
        capped = np.minimum(true, T.LABEL_CAP)
        # a network that stops short at both ends: too high near failure, too low near the cap
        pred = np.clip(10.0 + 0.8 * capped + rng.normal(0, 3, len(true)), 0, None)
        v = T.calibration_fit(pred, true)
        self.assertTrue(np.all(np.diff(v) >= 0))
        before = T.rmse(pred, capped)
        after = T.rmse(T.calibration_apply(v, pred), capped)
        self.assertLess(after, before / 2)

    def test_the_graph_form_of_the_map_equals_the_interpolation(self):
        # calibration_layers exports g(p) = v0 + sum_k d_k relu(p - knot_k); the same numbers here
        kn = T.CALIBRATION_KNOTS
        v = np.maximum.accumulate(np.random.default_rng(2).uniform(0, 130, len(kn)))
        slopes = np.diff(v) / np.diff(kn)
        d = np.concatenate([[slopes[0]], np.diff(slopes), [-slopes[-1]]])
        p = np.linspace(-20, 180, 401)
        hinges = np.maximum(p[:, None] - kn[None, :], 0.0)
        graph = v[0] + hinges @ d
        # below the first knot the graph form extrapolates nothing: the output is clamped at 0 first
        inside = p >= kn[0]
        np.testing.assert_allclose(graph[inside], T.calibration_apply(v, p)[inside], atol=1e-9)

    def test_the_cross_fitted_figure_scores_each_engine_with_a_map_fitted_on_others(self):
        rng = np.random.default_rng(3)
        engine = np.repeat(np.arange(1, 41), 100)
        true = np.tile(np.arange(100, 0, -1, dtype=np.float64), 40)
        pred = true + rng.normal(0, 5, len(true))
        figure = T.calibration_cv_rmse(engine, pred, true, seed=0)
        self.assertTrue(4.0 < figure < 6.0, figure)


class Scores(unittest.TestCase):
    def test_phm08_punishes_late_errors_more(self):
        self.assertAlmostEqual(T.phm08([87.0], [100.0]), np.e - 1.0)  # 13 early
        self.assertAlmostEqual(T.phm08([110.0], [100.0]), np.e - 1.0)  # 10 late
        self.assertGreater(T.phm08([120.0], [100.0]), T.phm08([80.0], [100.0]))
        self.assertEqual(T.rmse([3.0, 4.0], [0.0, 0.0]), np.sqrt(12.5))

    def test_the_conformal_quantile_is_the_finite_sample_one(self):
        self.assertEqual(T.conformal_q(np.arange(1.0, 10.0), 0.9), 9.0)  # ceil(10 * 0.9) = 9th
        self.assertEqual(T.conformal_q(np.arange(1.0, 20.0), 0.9), 18.0)  # ceil(20 * 0.9) = 18th
        self.assertEqual(T.conformal_q(np.arange(1.0, 6.0), 0.9), float("inf"))  # too few
        np.testing.assert_array_equal(T.postprocess(np.array([[-2.0], [3.0]])), [0.0, 3.0])


class Sittings(unittest.TestCase):
    """A long run split over several sittings: each finished seed leaves a record; a later run
    resumes from the records of the same configuration, and only the best-validation seed's graph
    is kept."""

    def setUp(self):
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="mantis-rul-test-"))
        self.config = {"dataset": "FD001", "arch": "hybrid+stats", "pooled_with": ["FD003"], "export": True}

    def tearDown(self):
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def record(self, seed: int, val: float, graph: bytes = b"graph") -> dict:
        onnx = T.record_path(self.dir, "FD001", seed, "onnx")
        onnx.write_bytes(graph + bytes([seed]))
        rec = {"config": self.config, "seed": seed, "run": {"val_rmse_capped": val},
               "onnx_sha256": T.sha256(onnx)}
        T.write_atomic(T.record_path(self.dir, "FD001", seed), __import__("json").dumps(rec))
        return rec

    def test_an_unfinished_seed_has_no_record_and_a_finished_one_is_read_back(self):
        self.assertIsNone(T.read_record(self.dir, "FD001", 0, self.config))
        rec = self.record(0, 14.2)
        self.assertEqual(T.read_record(self.dir, "FD001", 0, self.config), rec)
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["fd001-seed0.json", "fd001-seed0.onnx"])

    def test_a_record_of_another_configuration_is_refused(self):
        self.record(0, 14.2)
        other = dict(self.config, pooled_with=[])
        with self.assertRaises(SystemExit) as e:
            T.read_record(self.dir, "FD001", 0, other)
        self.assertIn("another configuration", str(e.exception))

    def test_a_graph_that_does_not_match_its_record_is_refused(self):
        self.record(0, 14.2)
        T.record_path(self.dir, "FD001", 0, "onnx").write_bytes(b"tampered")
        with self.assertRaises(SystemExit) as e:
            T.read_record(self.dir, "FD001", 0, self.config)
        self.assertIn("sha256", str(e.exception))

    def test_the_best_validation_seed_keeps_its_graph_and_ties_go_to_the_lowest_seed(self):
        records = {0: self.record(0, 14.5), 1: self.record(1, 14.1), 2: self.record(2, 14.1)}
        T.record_path(self.dir, "FD001", 3, "onnx").write_bytes(b"still training")
        self.assertEqual(T.best_seed(records), 1)
        T.keep_best_graph(self.dir, "FD001", records)
        self.assertEqual(sorted(p.name for p in self.dir.glob("*.onnx")), ["fd001-seed1.onnx", "fd001-seed3.onnx"])
        self.assertEqual(len(list(self.dir.glob("*.json"))), 3)


if __name__ == "__main__":
    unittest.main()
