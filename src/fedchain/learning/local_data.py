"""A trainer's own data, in one of three formats chosen by its path.

- ``.npz``: arrays ``x`` (one example a row, any shape) and ``y`` (integer labels), as
  ``numpy.savez`` writes them; nothing is ever unpickled. Any path that is neither a folder
  nor a ``.csv`` is read as one.
- ``.csv``: a header row naming the columns, one label column (``label_column``), every
  other column a numeric feature; each row is reshaped, row-major, to ``input_shape``.
- a folder: torchvision's ImageFolder layout, ``root/<class>/<image>`` (.png, .jpg, .jpeg,
  .bmp, in subfolders too). Class ``i`` is the ``i``-th class folder by sorted name, as
  ``torchvision.datasets.ImageFolder`` numbers them; images are read in that order.
  Pixels become ``value / 255`` (float32 in [0, 1]), converted to 'L' for a 1-channel
  ``input_shape`` and to 'RGB' for a 3-channel one; an image of another size than
  ``input_shape``'s is an error, never resized. A class folder with no images is allowed:
  it keeps the classes after it at their indices (a non-IID trainer may lack a class).

A .csv's rows and an image's channels have no shape of their own: ``input_shape`` (the
task's) gives it. Without one, a .csv gives ``(n, features)`` and an ImageFolder the first
image's channels and every image's common size, for checking a file before the task is
known. Whatever a format can get wrong is a :class:`LocalDataError` naming the file (and
row, column or image); comparing the data with a task (label range, class count) is the
caller's (``fedchain.cli.checks.data_fits``).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np

from fedchain.errors import LearningError

FORMATS = ("npz", "csv", "imagefolder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class LocalDataError(LearningError):
    """A trainer's data is malformed. ``option`` is what to fix: ``"data"`` (the file or
    folder) or ``"label_column"`` (the column named as the labels)."""

    def __init__(self, message: str, option: Literal["data", "label_column"] = "data"):
        super().__init__(message)
        self.option = option


def data_format(path: Path) -> Literal["npz", "csv", "imagefolder"]:
    """The format of ``path``: a folder is an ImageFolder, a ``.csv`` a .csv, anything else an .npz."""
    if path.is_dir():
        return "imagefolder"
    return "csv" if path.suffix.lower() == ".csv" else "npz"


def load_local_data(
    path: Path, label_column: str = "label", input_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Examples and labels from ``path`` (.npz, .csv or ImageFolder, see the module docstring).

    Parameters
    ----------
    path : Path
        The file or folder.
    label_column : str, default "label"
        A .csv's column of labels (unused by the other formats).
    input_shape : tuple of int, optional
        Shape of one example, the task's: a .csv row is reshaped to it, images are read in
        its channels and must have its height and width. An .npz keeps its stored shape.

    Returns
    -------
    (x, y) : x float32 of shape ``(n, *shape)``, finite; y int64 of shape ``(n,)``; n >= 1.
    """
    path = Path(path)
    fmt = data_format(path)
    if fmt == "imagefolder":
        return read_image_folder(path, input_shape)
    if fmt == "csv":
        return read_csv(path, label_column, input_shape)
    return read_npz(path)


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from an .npz with arrays x and y; never unpickles anything."""
    _a_file(path)
    not_npz = LocalDataError(
        f"{path} is not an .npz of numeric arrays x and y (write one with numpy.savez, or `fedchain data split`)"
    )
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        # numpy's own message suggests allow_pickle=True: not advice for data from anywhere
        raise not_npz from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise LocalDataError(f"{path} holds a single array, not arrays x and y (use numpy.savez)")
    with f:
        if "x" not in f or "y" not in f:
            raise LocalDataError(f"{path} has arrays {sorted(f.files)}, not x and y")
        try:
            x, y = f["x"], f["y"]
        except ValueError:  # an object array: it would need unpickling
            raise not_npz from None
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf" or y.ndim != 1:
        raise LocalDataError(f"{path}: x must be numbers and y one integer label an example")
    if len(x) != len(y) or len(y) == 0:
        raise LocalDataError(f"{path} needs one label per example: x has {len(x)}, y has {len(y)}")
    if y.dtype.kind == "f" and not (np.isfinite(y) & (y == np.round(y))).all():
        i = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0]
        raise LocalDataError(f"{path}: y[{i}] is {y[i]}, not an integer label")
    x = np.asarray(x, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        raise LocalDataError(
            f"{path}: example {bad[0]} of x has a NaN or infinite value (every feature must be finite)"
        )
    return x, np.asarray(y, dtype=np.int64)


def read_csv(
    path: Path, label_column: str = "label", input_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from a .csv: a header row, then one example a row (see the module docstring)."""
    _a_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows, lines = [], []
            for row in reader:
                if row:  # a blank line
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise LocalDataError(f"{path} is not UTF-8 text: a .csv is read as UTF-8") from None
    except csv.Error as e:
        raise LocalDataError(f"{path} is not a readable .csv ({e})") from None
    if header is None:
        raise LocalDataError(f"{path} is empty: a .csv needs a header row naming its columns, then one row an example")
    names = [name.strip() for name in header]
    if names.count(label_column) != 1:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        has = "no column" if label_column not in names else f"{names.count(label_column)} columns named"
        raise LocalDataError(
            f"{path} has {has} {label_column!r} (its columns: {shown}): name its label column with --label-column",
            option="label_column",
        )
    if not rows:
        raise LocalDataError(f"{path} has a header and no rows: it needs one row an example")
    if len(names) == 1:
        raise LocalDataError(f"{path} has only the label column {label_column!r}: every other column is a feature")
    for line, row in zip(lines, rows):
        if len(row) != len(names):
            raise LocalDataError(f"{path} line {line} has {len(row)} cells; the header names {len(names)} columns")
    label = names.index(label_column)
    values = np.empty((len(rows), len(names)))
    for i, row in enumerate(rows):
        try:
            values[i] = [float(cell) for cell in row]
        except ValueError:
            j = next(j for j, cell in enumerate(row) if not _is_number(cell))
            what = "an integer label" if j == label else "a number (every feature is numeric)"
            raise LocalDataError(f"{path} line {lines[i]}, column {names[j]!r}: {row[j]!r} is not {what}") from None
    y, x = values[:, label], np.delete(values, label, axis=1)
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
    if len(bad):
        cell = rows[bad[0]][label]
        raise LocalDataError(f"{path} line {lines[bad[0]]}, column {label_column!r}: {cell!r} is not an integer label")
    bad_rows, bad_cols = np.nonzero(~np.isfinite(x))
    if len(bad_rows):
        i, j = bad_rows[0], bad_cols[0] + (bad_cols[0] >= label)
        raise LocalDataError(
            f"{path} line {lines[i]}, column {names[j]!r}: {rows[i][j]!r} (every feature must be a finite number)"
        )
    if input_shape is not None:
        if x.shape[1] != math.prod(input_shape):
            raise LocalDataError(
                f"{path} has {x.shape[1]} feature columns; the task's model takes examples of shape "
                f"{tuple(input_shape)}, {math.prod(input_shape)} features a row (read row-major)"
            )
        x = x.reshape(len(x), *input_shape)
    return x.astype(np.float32), y.astype(np.int64)


def class_names(root: Path) -> list[str]:
    """An ImageFolder's classes: its subfolders' names, sorted (class ``i`` is the ``i``-th)."""
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir())


def read_image_folder(root: Path, input_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from an ImageFolder (see the module docstring)."""
    classes = class_names(root)
    if not classes:
        raise LocalDataError(
            f"{root} has no class folders: an ImageFolder holds one folder of images per class, root/<class>/<image>"
        )
    files = [(file, k) for k, name in enumerate(classes) for file in _images(root / name)]
    if not files:
        raise LocalDataError(f"{root}'s class folders hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    if input_shape is None:
        channels, size = None, None
    elif len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise LocalDataError(
            f"{root} is a folder of images; the task's model takes examples of shape {tuple(input_shape)}, "
            "not images (channels, height, width) of 1 or 3 channels"
        )
    else:
        channels, size = input_shape[0], (input_shape[2], input_shape[1])
    from PIL import Image

    pixels, first = [], files[0][0]
    for file, _ in files:
        try:
            with Image.open(file) as image:
                image.load()
                if size is None:  # no task yet: every image the size of the first
                    size = image.size
                if channels is None:
                    channels = 1 if len(image.getbands()) == 1 else 3
                if image.size != size:
                    raise LocalDataError(
                        f"{file} is {image.size[0]}x{image.size[1]} pixels; "
                        f"{'the task takes' if input_shape else f'{first} is'} {size[0]}x{size[1]} "
                        "(images are not resized)"
                    )
                pixels.append(np.asarray(image.convert("L" if channels == 1 else "RGB")))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise LocalDataError(f"{file} is not a readable image ({e})") from None
    x = np.stack(pixels).astype(np.float32) / 255
    x = x[:, None] if channels == 1 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array([k for _, k in files], dtype=np.int64)


def _images(folder: Path) -> list[Path]:
    """A class folder's images, in torchvision's order (sorted walk, sorted names)."""
    return [
        Path(top) / name
        for top, _, names in sorted(os.walk(folder, followlinks=True))
        for name in sorted(names)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    ]


def _a_file(path: Path) -> None:
    if not path.is_file():
        raise LocalDataError(f"{path}: no such file" + ("" if path.suffix else " or folder"))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
