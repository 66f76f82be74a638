import torch

from distributed_ssl.config import load_config
from distributed_ssl.evaluation.knn import knn_top1
from distributed_ssl.evaluation.knn_probe import knn_from_features, knn_probe
from distributed_ssl.evaluation.labeled_set import LabeledSplit, load_labeled


def _clusters(n_per, classes, dim, noise, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 5
    labels = torch.arange(classes).repeat_interleave(n_per)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=g), labels


def test_knn_recovers_planted_clusters_and_random_is_near_chance():
    bank, bl = _clusters(30, 5, 16, 0.5, 0)
    query, ql = _clusters(10, 5, 16, 0.5, 0)
    assert knn_top1(bank, bl, query, ql, 5, k=20) == 1.0
    shuffled = bl[torch.randperm(len(bl), generator=torch.Generator().manual_seed(1))]
    assert knn_top1(bank, shuffled, query, ql, 5, k=20) < 0.6


def _offset_features(n_per: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes told apart by 8 small dimensions, beside a shared offset and one loud dimension of pure noise:
    the shape of mean-pooled transformer tokens, whose cosine the offset and loud dimensions dominate."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.1 * torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
    labels = torch.arange(4).repeat_interleave(n_per)
    informative = centres[labels] + 0.02 * torch.randn(len(labels), 8, generator=g)
    loud = 10 * torch.randn(len(labels), 1, generator=g)
    return torch.cat([informative + 3.0, loud], dim=1), labels


def test_knn_standardises_with_the_bank_statistics_unless_told_not_to():
    (bank, bank_labels), (query, query_labels) = _offset_features(40, 0), _offset_features(10, 1)
    splits = {"train": LabeledSplit(bank, bank_labels, 4), "val": LabeledSplit(query, query_labels, 4)}
    feats = {"train": bank, "val": query}
    standardised = knn_from_features(feats, splits, load_config(None).eval)
    plain = knn_from_features(feats, splits, load_config(None, {"eval.knn_standardize": False}).eval)
    assert standardised >= 0.95 and plain < 0.6, (standardised, plain)
    # only the bank's statistics are used: a query alone is classified as well as in a batch
    one = {"train": LabeledSplit(bank, bank_labels, 4), "val": LabeledSplit(query[:1], query_labels[:1], 4)}
    alone = knn_from_features({"train": bank, "val": query[:1]}, one, load_config(None).eval)
    assert alone == 1.0


def test_leave_one_out_never_votes_for_itself():
    feats = torch.eye(4)
    labels = torch.tensor([0, 1, 2, 3])
    # every item's only true neighbour is itself: without it, nobody can be right
    assert knn_top1(feats, labels, feats, labels, 4, k=1, exclude_self=True) == 0.0
    assert knn_top1(feats, labels, feats, labels, 4, k=1, exclude_self=False) == 1.0


def test_probe_on_digits_pixels_beats_chance(digits):
    cfg = load_config(None)
    splits = load_labeled(str(digits), cfg)
    assert set(splits) == {"train", "val"}
    acc = knn_probe(lambda x: x.flatten(1), splits, cfg.eval)
    assert acc > 0.8  # raw pixels already separate digits well; a probe that is broken would not
