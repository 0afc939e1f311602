"""A trainer's own data (fedchain.learning.local_data): .npz, .csv and ImageFolder.

Every format round-trips through `fedchain data split --format` (images up to their 8-bit
quantisation), and every malformed input is refused by the checks `node run --data` makes,
with a message naming the flag and the file, before any chain is involved.
"""

from __future__ import annotations

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from fedchain.cli import app, checks
from fedchain.learning.local_data import class_names, data_format, load_local_data

DIGITS = (1, 8, 8)


def split(out, *args: str, trainers: int = 2):
    r = CliRunner().invoke(app, ["data", "split", "--trainers", str(trainers), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """`data split` of digits in each format, same seed: folder per format."""
    root = tmp_path_factory.mktemp("split")
    for fmt in ("npz", "csv", "imagefolder"):
        split(root / fmt, "--format", fmt)
    return root


def npz_data(path):
    with np.load(path) as f:
        return f["x"], f["y"]


def test_npz_round_trip(digits):
    x, y = load_local_data(digits / "npz" / "trainer-0.npz")
    want_x, want_y = npz_data(digits / "npz" / "trainer-0.npz")
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)


def test_csv_round_trip_is_bit_exact(digits):
    path = digits / "csv" / "trainer-1.csv"
    assert data_format(path) == "csv"
    assert path.read_text().splitlines()[0].startswith("label,x0,x1,")
    x, y = load_local_data(path, input_shape=DIGITS)
    want_x, want_y = npz_data(digits / "npz" / "trainer-1.npz")
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    flat, _ = load_local_data(path)  # no task yet: one row of features an example
    assert flat.shape == (len(y), 64) and np.array_equal(flat, want_x.reshape(len(y), 64))


def test_image_folder_round_trip_up_to_8_bits(digits):
    root = digits / "imagefolder" / "trainer-0"
    assert data_format(root) == "imagefolder"
    assert class_names(root) == [str(k) for k in range(10)]
    x, y = load_local_data(root, input_shape=DIGITS)
    want_x, want_y = npz_data(digits / "npz" / "trainer-0.npz")
    order = np.argsort(want_y, kind="stable")  # read class by class, each in the trainer's order
    want_x, want_y = want_x[order], want_y[order]
    assert x.dtype == np.float32 and x.shape == want_x.shape and np.array_equal(y, want_y)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.abs(x - want_x).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(x, np.rint(want_x * 255).astype(np.uint8).astype(np.float32) / 255)
    same, _ = load_local_data(root)  # no task yet: the images' own channels and size
    assert np.array_equal(same, x)


def test_csv_label_column_anywhere_and_named(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("a,digit,b\n0.5,1,2\n-1e3,0, 4 \n")
    x, y = checks.local_data(path, "digit", "--data", (2,))
    assert np.array_equal(x, np.array([[0.5, 2], [-1000, 4]], np.float32)) and np.array_equal(y, [1, 0])


def test_images_take_the_tasks_channels(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    for k in ("a", "b"):
        (tmp_path / k).mkdir()
    Image.fromarray(rgb).save(tmp_path / "a" / "red.png")
    Image.fromarray(np.full((2, 3), 51, np.uint8)).save(tmp_path / "b" / "grey.bmp")
    x, y = load_local_data(tmp_path, input_shape=(3, 2, 3))
    assert x.shape == (2, 3, 2, 3) and np.array_equal(y, [0, 1])
    assert np.array_equal(x[0, 0], np.ones((2, 3))) and not x[0, 1:].any()  # channels first
    assert np.allclose(x[1], 0.2)  # grey in every channel
    x, _ = load_local_data(tmp_path, input_shape=(1, 2, 3))
    assert np.allclose(x[0], round(255 * 299 / 1000) / 255)  # PIL's 'L' of red: ITU-R 601-2 luma


def test_an_empty_class_folder_keeps_the_classes_after_it(tmp_path):
    for k in range(3):
        (tmp_path / str(k)).mkdir()
    for k in (0, 2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / str(k) / "a.png")
    (tmp_path / "2" / "notes.txt").write_text("not an image: skipped, as torchvision does\n")
    x, y = checks.local_data(tmp_path, None, "--data", DIGITS)
    checks.data_fits(x, y, DIGITS, 3, "--data", tmp_path)
    assert np.array_equal(y, [0, 2])


# -- malformed inputs: one line naming the flag and the file -----------------------------


def refused(path, *words, flag="--data", label_column=None, input_shape=DIGITS, num_classes=10):
    """The message `node run --data PATH` fails with, before anything touches a chain."""
    with pytest.raises(typer.BadParameter) as e:
        x, y = checks.local_data(path, label_column, "--data", None)  # before the task is known
        x, y = checks.local_data(path, label_column, "--data", input_shape)  # against its recipe
        checks.data_fits(x, y, input_shape, num_classes, "--data", path)
    message = e.value.format_message()
    assert e.value.param_hint == flag, message
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    assert "\n" not in message and "pickle" not in message
    return message


def csv_file(tmp_path, text: str, name: str = "own.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def digits_csv(rows: list[list[str]], header: str | None = None) -> str:
    header = header or ",".join(["label", *(f"x{j}" for j in range(64))])
    return "\n".join([header, *(",".join(row) for row in rows)]) + "\n"


def row(label="1", value="0.5", n=64):
    return [label, *[value] * n]


def test_missing_label_column(tmp_path):
    path = csv_file(tmp_path, "a,b\n1,2\n")
    refused(path, "no column 'label'", "a, b", "--label-column", flag="--label-column")
    refused(path, "no column 'y'", flag="--label-column", label_column="y")


def test_label_column_twice(tmp_path):
    refused(csv_file(tmp_path, "label,a,label\n1,2,3\n"), "2 columns named 'label'", flag="--label-column")


def test_label_column_only_with_a_csv(tmp_path):
    np.savez(tmp_path / "own.npz", x=np.zeros((2, *DIGITS), np.float32), y=np.zeros(2, np.int64))
    refused(tmp_path / "own.npz", "only a .csv", "an .npz", flag="--label-column", label_column="y")
    (tmp_path / "images" / "0").mkdir(parents=True)
    refused(tmp_path / "images", "ImageFolder", flag="--label-column", label_column="y")


def test_non_numeric_cell(tmp_path):
    rows = [row(), row()]
    rows[1][5] = "abc"
    refused(csv_file(tmp_path, digits_csv(rows)), "line 3, column 'x4': 'abc' is not a number")
    rows[1][5] = ""
    refused(csv_file(tmp_path, digits_csv(rows)), "column 'x4': '' is not a number")


def test_empty_file(tmp_path):
    refused(csv_file(tmp_path, ""), "is empty", "header row")


def test_zero_rows(tmp_path):
    refused(csv_file(tmp_path, digits_csv([])), "no rows")
    np.savez(tmp_path / "none.npz", x=np.zeros((0, *DIGITS), np.float32), y=np.zeros(0, np.int64))
    refused(tmp_path / "none.npz", "x has 0, y has 0")
    for k in range(10):
        (tmp_path / "images" / str(k)).mkdir(parents=True)
    refused(tmp_path / "images", "hold no images", ".png")
    (tmp_path / "bare").mkdir()
    refused(tmp_path / "bare", "no class folders", "root/<class>/<image>")


def test_only_a_label_column(tmp_path):
    refused(csv_file(tmp_path, "label\n1\n"), "only the label column")


def test_a_row_of_another_width(tmp_path):
    refused(csv_file(tmp_path, digits_csv([row(), row(n=63)])), "line 3 has 64 cells", "65 columns")


def test_feature_count_not_the_tasks(tmp_path):
    path = csv_file(tmp_path, digits_csv([row(n=65)], header=",".join(["label", *map(str, range(65))])))
    refused(path, "65 feature columns", "(1, 8, 8)", "64 features")


def test_labels_not_integers_in_the_tasks_classes(tmp_path):
    refused(csv_file(tmp_path, digits_csv([row(), row("2.5")])), "line 3, column 'label': '2.5' is not an integer")
    refused(csv_file(tmp_path, digits_csv([row("cat")])), "'cat' is not an integer label")
    refused(csv_file(tmp_path, digits_csv([row("nan")])), "'nan' is not an integer label")
    refused(csv_file(tmp_path, digits_csv([row("3"), row("10")])), "labels 3..10", "classes 0..9")
    refused(csv_file(tmp_path, digits_csv([row("-1")])), "labels -1..-1", "classes 0..9")
    assert np.array_equal(checks.local_data(csv_file(tmp_path, digits_csv([row("3.0")])), None, "--data")[1], [3])
    np.savez(tmp_path / "own.npz", x=np.zeros((2, *DIGITS), np.float32), y=np.array([1.0, 0.5]))
    refused(tmp_path / "own.npz", "y[1] is 0.5, not an integer label")


def test_nan_or_infinite_features(tmp_path):
    for bad in ("nan", "inf", "-Infinity"):
        rows = [row(), row()]
        rows[0][64] = bad
        refused(csv_file(tmp_path, digits_csv(rows)), f"line 2, column 'x63': '{bad}'", "finite")
    x = np.zeros((3, *DIGITS), np.float32)
    x[2, 0, 4, 4] = np.nan
    np.savez(tmp_path / "own.npz", x=x, y=np.zeros(3, np.int64))
    refused(tmp_path / "own.npz", "example 2", "NaN or infinite")


def image_folder(root, classes: int = 10, size=(8, 8)):
    for k in range(classes):
        (root / str(k)).mkdir(parents=True)
        Image.fromarray(np.full(size[::-1], 16 * k, np.uint8)).save(root / str(k) / "0.png")
    return root


def test_class_folders_not_the_tasks_classes(tmp_path):
    root = image_folder(tmp_path / "images", classes=9)
    refused(root, "9 class folders (0, 1, 2, 3, 4, 5, 6, 7, 8)", "10 classes")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "9").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "9" / "0.png")
    refused(root, "11 class folders (.ipynb_checkpoints, 0,")


def test_unreadable_image(tmp_path):
    root = image_folder(tmp_path / "images")
    (root / "3" / "broken.png").write_bytes(b"not a png at all")
    refused(root, "broken.png is not a readable image")
    (root / "3" / "broken.png").unlink()
    whole = (root / "4" / "0.png").read_bytes()
    (root / "4" / "cut.png").write_bytes(whole[: len(whole) // 2])
    refused(root, "cut.png is not a readable image")


def test_wrong_image_size(tmp_path):
    root = image_folder(tmp_path / "images")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "5" / "big.jpg")
    message = refused(root, "big.jpg is 9x9 pixels", "8x8", "not resized")
    assert "the first image" not in message and "0.png is" in message  # caught before the task is known
    all_big = image_folder(tmp_path / "big", size=(9, 7))
    refused(all_big, "0.png is 9x7 pixels; the task takes 8x8")


def test_images_for_a_task_that_takes_no_images(tmp_path):
    refused(image_folder(tmp_path / "images"), "(40,)", "not images", input_shape=(40,))


def test_missing_file(tmp_path):
    refused(tmp_path / "gone.csv", "no such file")
    refused(tmp_path / "gone", "no such file or folder")


# -- the command line ----------------------------------------------------------------------


def test_node_run_refuses_a_bad_csv_before_any_chain(tmp_path):
    rows = [row(), row()]
    rows[1][3] = "oops"
    bad = csv_file(tmp_path, digits_csv(rows), "bad.csv")
    nowhere = str(tmp_path / "no-deployment.json")
    for args, flag, words in [
        (["--data", str(bad)], "--data", f"{bad} line 3, column 'x2': 'oops' is not a number"),
        (["--data", str(bad), "--label-column", "digit"], "--label-column", "no column 'digit'"),
        (["--label-column", "digit", "--data", str(tmp_path / "x.npz")], "--label-column", "only a .csv"),
        (["--role", "validator", "--label-column", "digit"], "--label-column", "no --data"),
    ]:
        argv = ["node", "run", "--role", "trainer", "--deployment", nowhere, "--dev-account", "2", *args]
        r = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
        assert f"Invalid value for {flag}: " in r.output and words in r.output, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "no-deployment.json").exists()


def test_data_split_format_checks(tmp_path):
    runner = CliRunner()

    def fails(*args: str) -> str:
        r = runner.invoke(app, ["data", "split", "--out", str(tmp_path / "d"), *args], env={"COLUMNS": "200"})
        assert r.exit_code == 2, r.output
        return r.output

    assert "'tiff' is not one of: npz, csv, imagefolder" in fails("--format", "tiff")
    assert "mnist1d's examples are not images" in fails("--format", "imagefolder", "--dataset", "mnist1d")
    (tmp_path / "d" / "trainer-1").mkdir(parents=True)
    assert "trainer-1 exists" in fails("--format", "imagefolder")
    assert not (tmp_path / "d" / "trainer-0").exists()


def test_data_split_pathological_image_folders_keep_every_class(tmp_path):
    split(tmp_path, "--format", "imagefolder", "--partition", "pathological", trainers=10)
    x, y = checks.local_data(tmp_path / "trainer-0", None, "--data", DIGITS)
    checks.data_fits(x, y, DIGITS, 10, "--data", tmp_path / "trainer-0")
    assert len(class_names(tmp_path / "trainer-0")) == 10 and len(np.unique(y)) == 2
