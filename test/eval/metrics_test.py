#!/usr/bin/python3
"""eval/metrics.py against cases worked out by hand (the sums are in the comments)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from eval import metrics  # noqa: E402


class AveragePrecision(unittest.TestCase):
    """Oxford/Paris compute_ap: trapezoids under precision-recall, precision 1 at recall 0."""

    def test_two_relevant(self):
        # rank 1 hit: recall .5, precision 1   -> .5 * (1 + 1) / 2   = .5
        # rank 2 miss: recall .5                 -> 0
        # rank 3 hit: recall 1, precision 2/3  -> .5 * (1/2 + 2/3) / 2 = 7/24
        self.assertAlmostEqual(metrics.average_precision([1, 2, 3, 4, 5], {1, 3}), 19 / 24)

    def test_first_miss(self):
        # rank 1 miss: precision 0; rank 2 hit: recall 1, precision .5 -> 1 * (0 + .5) / 2
        self.assertAlmostEqual(metrics.average_precision([2, 1], {1}), 0.25)

    def test_perfect(self):
        self.assertAlmostEqual(metrics.average_precision([3, 1, 2, 9], {1, 2, 3}), 1.0)

    def test_junk_is_removed_before_scoring(self):
        # [9, 1, 2, 3] without junk 9 is [1, 2, 3]: the first case
        self.assertAlmostEqual(metrics.average_precision([9, 1, 2, 3], {1, 3}, junk={9}), 19 / 24)
        # junk between hits does not dilute precision either
        self.assertAlmostEqual(metrics.average_precision([1, 7, 8, 3], {1, 3}, junk={7, 8}), 1.0)

    def test_relevant_never_reached(self):
        # only 1 of 2 relevant found, at rank 1: .5 * (1 + 1) / 2
        self.assertAlmostEqual(metrics.average_precision([1, 2], {1, 3}), 0.5)
        self.assertAlmostEqual(metrics.average_precision([], {1}), 0.0)

    def test_no_relevant_is_an_error(self):
        with self.assertRaises(ValueError):
            metrics.average_precision([1, 2], set())


class AveragePrecisionAtK(unittest.TestCase):
    """The paper's top-k score: mean precision at the relevant ranks <= k."""

    def test_cut_at_k(self):
        # hits at ranks 1 and 3 (rank 4 is beyond k = 3): (1/1 + 2/3) / 2
        self.assertAlmostEqual(metrics.average_precision_at([1, 2, 3, 4], {1, 3, 4}, 3), (1 + 2 / 3) / 2)
        self.assertAlmostEqual(metrics.average_precision_at([1, 2, 3, 4], {1, 3, 4}, 2), 1.0)
        # all four: (1 + 2/3 + 3/4) / 3
        self.assertAlmostEqual(metrics.average_precision_at([1, 2, 3, 4], {1, 3, 4}, 30), (1 + 2 / 3 + 3 / 4) / 3)

    def test_no_hit(self):
        self.assertEqual(metrics.average_precision_at([5, 6], {1}, 30), 0.0)

    def test_junk_does_not_take_a_place(self):
        # junk 9 removed: [2, 1], hit at rank 2 -> 1/2; with k = 2 the hit stays inside
        self.assertAlmostEqual(metrics.average_precision_at([9, 2, 1], {1}, 2, junk={9}), 0.5)


class Recall(unittest.TestCase):
    exact = [(1, 0.1), (2, 0.2), (3, 0.3)]

    def test_same(self):
        self.assertEqual(metrics.recall_at(self.exact, self.exact, 3), 1.0)

    def test_tie_at_the_kth_place_is_no_loss(self):
        self.assertEqual(metrics.recall_at([(1, 0.1), (2, 0.2), (4, 0.3)], self.exact, 3), 1.0)

    def test_farther_row_is_a_loss(self):
        self.assertAlmostEqual(metrics.recall_at([(1, 0.1), (2, 0.2), (5, 0.35)], self.exact, 3), 2 / 3)
        self.assertAlmostEqual(metrics.recall_at([(1, 0.1)], self.exact, 3), 1 / 3)

    def test_fewer_rows_than_k(self):
        # a table of two rows: both found is everything
        self.assertEqual(metrics.recall_at(self.exact[:2], self.exact[:2], 30), 1.0)


class Ordering(unittest.TestCase):
    def test_ties_by_id(self):
        self.assertEqual(metrics.by_distance([(5, 0.2), (3, 0.2), (9, 0.1)]), [9, 3, 5])

    def test_percentile_interpolates(self):
        self.assertAlmostEqual(metrics.percentile([4, 1, 3, 2], 50), 2.5)
        self.assertAlmostEqual(metrics.percentile([4, 1, 3, 2], 95), 3.85)
        self.assertEqual(metrics.percentile([7], 95), 7)


if __name__ == '__main__':
    unittest.main(verbosity=2)
