"""Models named by a Python entry point, ``package.module:factory``, and the pin on their source.

A task's model is a built-in (``MODELS``) or any PyTorch module its participants install
themselves, named as an entry point: ``factory(input_shape, num_classes)`` returns an
``nn.Module`` whose state_dict is all floating tensors (``build``). The module is imported from
the installed packages or the current folder (``import_module``): nothing fetched from the chain,
a peer or a blob is ever imported, nor a module that only a recipe names: this process builds
only the entry points its operator named on its own command line (``allow``), so that a
sponsor cannot make every node import and call whatever happens to be installed.

A recipe pins the entry point's source as ``model_source``, a sha256 over its module's source
files (``source_hash``); every node hashes its installed copy, before running it, and refuses
a task that pins another (``check_source``). Flower clients (``fedchain.flower``) are pinned the
same way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

import torch
from torch import nn

from fedchain.errors import LearningError

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
ENTRY_POINT = re.compile(rf"{_NAME}:{_NAME}")  # package.module:factory (dotted names on both sides)
NAMED: set[str] = set()  # the entry points this process's operator named (``allow``)


class ModelError(LearningError, ValueError):
    """An entry-point model cannot be built here, or its installed source is not the task's."""


def is_entry_point(name: str) -> bool:
    """Whether a model name is an entry point rather than a built-in (a built-in has no ':')."""
    return ":" in name


def allow(spec: str) -> None:
    """Let this process build ``spec``: its operator named it (``--model`` on a command line)."""
    NAMED.add(spec)


def _cwd_on_path() -> None:
    # the user's project folder, as `python -m` and `flwr run` put it on sys.path
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def import_module(name: str) -> ModuleType:
    """Import ``name`` from the installed packages or the current folder."""
    _cwd_on_path()
    return importlib.import_module(name)


def load_factory(spec: str) -> Callable[..., object]:
    """The callable ``spec`` names, imported; ``ModelError`` saying what is wrong otherwise."""
    if not ENTRY_POINT.fullmatch(spec):
        raise ModelError(f"{spec!r} is neither a built-in model nor an entry point package.module:factory")
    if spec not in NAMED:
        raise ModelError(
            f"the model {spec} was not named by this machine's operator: fedchain builds an entry-point model "
            f"only when its own command line names it (--model {spec}), never because a recipe does"
        )
    module, _, attr = spec.partition(":")
    try:
        obj: object = import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise ModelError(
                f"no module {module!r} is installed here ({spec}): install it, or run from the folder that holds it"
            ) from None
        raise ModelError(f"cannot import {module!r} ({spec}): {e}") from e  # one of its own imports is missing
    except Exception as e:  # the module failing as it runs
        raise ModelError(f"cannot import {module!r} ({spec}): {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"module {module!r} has no attribute {attr!r} ({spec})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(
            f"{spec} is not callable (it is of type {type(obj).__name__}): name a factory(input_shape, "
            "num_classes) that returns a torch.nn.Module"
        )
    return obj


def build(spec: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``factory(input_shape, num_classes)`` of the entry point ``spec``, checked: an ``nn.Module``
    with at least one tensor, every one floating (they are averaged, in fixed point, as float32)."""
    factory = load_factory(spec)
    try:
        model = factory(input_shape, num_classes)
    except Exception as e:
        raise ModelError(f"{spec}({input_shape}, {num_classes}) raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    state = model.state_dict()
    if not state:
        raise ModelError(f"{spec}'s module has no parameters or buffers: nothing to train")
    other = [f"{k} ({t.dtype})" for k, t in state.items() if not torch.is_floating_point(t)]
    if other:
        raise ModelError(
            f"{spec}'s state_dict holds tensors that are not floating point: {', '.join(other[:3])}"
            f"{', ...' if len(other) > 3 else ''}. Every tensor of a model is averaged as float32; a BatchNorm's "
            "num_batches_tracked is such a counter (use GroupNorm or LayerNorm)"
        )
    return model


def _source_path(module: str) -> tuple[str, bool]:
    """(path of the module's source file, whether it is a package), found without running the
    module (its parent packages are imported, as any import of it would)."""
    _cwd_on_path()
    try:
        loaded = sys.modules.get(module)
        found = getattr(loaded, "__spec__", None) if loaded is not None else importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:  # a parent package missing, or no __spec__
        raise ModelError(f"cannot find module {module!r} to hash its source: {e}") from None
    if found is None:
        raise ModelError(f"no module {module!r} is installed here: nothing to hash")
    if found.origin is None or not found.has_location or not found.origin.endswith(".py"):
        raise ModelError(f"module {module} has no .py source file to pin")
    return found.origin, found.submodule_search_locations is not None


def source_files(specs: Sequence[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of every source file of the modules ``specs`` name, sorted by name: the
    module's own .py file, or every .py file under a package's folder."""
    files: dict[str, bytes] = {}
    for spec in specs:
        path, package = _source_path(spec.partition(":")[0])
        root = os.path.dirname(path)
        if package:  # every .py file under its folder
            found = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".py")]
            base = os.path.dirname(root)
        else:
            found, base = [path], root
        for f in found:
            with open(f, "rb") as fh:
                files[os.path.relpath(f, base)] = fh.read()
    return sorted(files.items())


def source_hash(specs: Sequence[str]) -> str:
    """sha256 (hex) over the entry points' source files (``source_files``): each file's name,
    its length and its bytes, so that no two different sets of files hash alike. A task's recipe
    pins it; a node whose installed copy hashes differently refuses the task."""
    h = hashlib.sha256()
    for name, data in source_files(specs):
        encoded = name.replace(os.sep, "/").encode()
        h.update(len(encoded).to_bytes(8, "big") + encoded + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def model_source(model: str) -> str:
    """What a recipe pins for ``model``: its entry point's ``source_hash``, nothing for a built-in."""
    return source_hash([model]) if is_entry_point(model) else ""


def check_source(pinned: str, specs: Sequence[str]) -> None:
    """Refuse a task whose recipe pins other source than the one installed here for ``specs``
    (the first names it in the message), naming both hashes."""
    mine = source_hash(specs)
    if pinned != mine:
        raise ModelError(
            f"the task pins {specs[0]}'s source at sha256 {pinned}, but the one installed here hashes to "
            f"{mine}: install the task's version (fedchain never runs code from the network)"
        )
