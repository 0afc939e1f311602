"""Rule knowledge lives in the registry: no code outside ``fedchain.learning.aggregate``
compares a rule's name, so adding a rule needs no edit elsewhere.

Checked by parsing every module of the package: a comparison with a registered rule's
name (``rule == "krum"``, ``rule in ("krum", "bulyan")``), a dict literal keyed by one
(``{"krum": 64}``) or a ``match`` case on one is rule knowledge that belongs in the
rule's ``Rule``. Naming a rule is fine anywhere else: a default (``rule: str =
"fedavg"``), a help text, a docstring, a call. ``chain/`` may key dicts by ``"krum"``:
there it is a contract's name (krum.vy). ``benchmarks/`` measure named rules on purpose
and are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fedchain
from fedchain.learning import aggregate

PACKAGE = Path(fedchain.__file__).parent
AGGREGATE = PACKAGE / "learning" / "aggregate"
CHAIN = PACKAGE / "chain"


def _names_in(node: ast.AST, names: set[str]) -> Iterator[str]:
    """Rule names written as literals in ``node``: a string, or a tuple, list or set of them."""
    if isinstance(node, ast.Constant) and node.value in names:
        yield node.value
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for elt in node.elts:
            yield from _names_in(elt, names)


def rule_knowledge(source: str, names: set[str], dict_keys: bool = True) -> list[str]:
    """``line: what`` for each place in ``source`` that decides something by a rule's name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [f"{node.lineno}: compares {n!r}" for n in _names_in(operand, names)]
        elif isinstance(node, ast.Dict) and dict_keys:
            for key in node.keys:
                if key is not None:
                    found += [f"{node.lineno}: keys a dict by {n!r}" for n in _names_in(key, names)]
        elif isinstance(node, ast.MatchValue):
            found += [f"{node.lineno}: matches {n!r}" for n in _names_in(node.value, names)]
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))  # ast.walk goes breadth first


def test_the_check_finds_rule_knowledge_and_nothing_else():
    names = {"krum", "bulyan", "fedavg", "zeno"}
    knowledge = """
if rule == "krum": pass
ok = "bulyan" != rule or rule in ("fedavg", "x") or rule not in ["zeno"]
CAPS = {"krum": 64}
match rule:
    case "zeno": pass
"""
    assert rule_knowledge(knowledge, names) == [
        "2: compares 'krum'",
        "3: compares 'bulyan'",
        "3: compares 'fedavg'",
        "3: compares 'zeno'",
        "4: keys a dict by 'krum'",
        "6: matches 'zeno'",
    ]
    assert rule_knowledge('CAPS = {"krum": 64}', names, dict_keys=False) == []
    naming = '''
def f(rule: str = "fedavg", help="fedavg | krum"):
    """A docstring naming krum and "bulyan"."""
    run(rule="zeno", rules=["fedavg", "krum"])
    return rule == "krummy" or {"fedavgs": 1}
'''
    assert rule_knowledge(naming, names) == []


def test_no_code_outside_the_aggregate_package_compares_a_rule_name():
    names = set(aggregate.RULES)
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if AGGREGATE in path.parents:
            continue
        hits = rule_knowledge(path.read_text(), names, dict_keys=CHAIN not in path.parents)
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    assert found == {}, "rule knowledge outside the registry: give the rule's Rule an attribute instead"
