"""code_sim_score is LongBench's: fuzzywuzzy 0.18.0's ratio (difflib backend), its first-line
rule, the best over the answers."""

from __future__ import annotations

import difflib
import random
import string
import warnings

import pytest

from llmenergy import scoring

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Using slow pure-python SequenceMatcher": wanted here
    fuzz = pytest.importorskip("fuzzywuzzy.fuzz")

PAIRS = 5000
CODE_WORDS = [
    "self", "return", "def", "if", "else:", "for", "in", "range(", ")", "(", "=", "==", "+",
    "x", "y", "value", "result", "append(", "None", "True", "0", "1", "[", "]", ",", ":",
    ".", "import", "os", "path", "  ", "    ", "'", '"', "\t",
]  # fmt: skip


def random_line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:  # code-like
        return "".join(
            rng.choice(CODE_WORDS) + rng.choice(["", " "]) for _ in range(rng.randint(0, 40))
        )
    if kind < 0.7:  # printable noise, from empty to long (difflib's autojunk starts at 200)
        return "".join(
            rng.choice(string.printable) for _ in range(rng.choice([0, 1, 5, 50, 250, 600]))
        )
    if kind < 0.85:  # few symbols: many repeats, which autojunk treats as junk
        return "".join(rng.choice("ab ") for _ in range(rng.randint(0, 400)))
    return "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 30)))  # unicode


def pairs(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a = random_line(rng)
        roll = rng.random()
        if roll < 0.1:
            b = a  # equal
        elif roll < 0.4 and a:  # a small edit of a
            chars = list(a)
            for _ in range(rng.randint(1, 5)):
                at = rng.randrange(len(chars) + 1)
                if rng.random() < 0.5 and at < len(chars):
                    del chars[at]
                else:
                    chars.insert(at, rng.choice(string.ascii_letters))
            b = "".join(chars)
        else:
            b = random_line(rng)
        out.append((a, b))
    return out


def test_fuzzywuzzy_uses_the_difflib_backend() -> None:
    # With python-Levenshtein importable, fuzzywuzzy changes backend and numbers.
    assert fuzz.SequenceMatcher is difflib.SequenceMatcher


def test_ratio_equals_fuzzywuzzy_on_5000_pairs() -> None:
    generated = pairs(seed=2026, count=PAIRS)
    assert len(generated) == PAIRS
    assert sum(len(a) >= 200 or len(b) >= 200 for a, b in generated) > 100
    assert any(a == b for a, b in generated) and any(a == "" for a, _ in generated)
    mismatches = [
        (a, b, ours, theirs)
        for a, b in generated
        if (ours := scoring.fuzz_ratio(a, b)) != (theirs := fuzz.ratio(a, b))
    ]
    assert not mismatches, mismatches[:3]


def longbench_code_sim(prediction: str, answers: list[str]) -> float:
    """The metric as LongBench computes it, on fuzzywuzzy itself (our oracle)."""
    best = 0.0
    for answer in answers:
        lines = prediction.lstrip("\n").split("\n")
        line = next((x for x in lines if "`" not in x and "#" not in x and "//" not in x), "")
        best = max(best, fuzz.ratio(line, answer) / 100)
    return best


def test_code_sim_score_equals_longbench_on_5000_predictions() -> None:
    rng = random.Random(7)
    lines = [a for a, _ in pairs(seed=11, count=PAIRS)]
    for index in range(PAIRS):
        picked = rng.sample(lines, rng.randint(1, 6))
        decorations = ["```python", "# a comment", "// note", "", "\n", "`x`"]
        body = [rng.choice([*decorations, *picked]) for _ in range(rng.randint(1, 6))]
        prediction = "\n" * rng.randint(0, 2) + "\n".join(body)
        answers = rng.sample(lines, rng.randint(1, 3))
        assert scoring.code_sim_score(prediction, answers) == longbench_code_sim(
            prediction, answers
        ), index


@pytest.mark.parametrize(
    ("prediction", "line"),
    [
        ("x = 1\ny = 2", "x = 1"),
        ("\n\n    return x\n", "    return x"),
        ("```python\nreturn x\n```", "return x"),
        ("# comment\n// other\nvalue = f(x)  # trailing", ""),
        ("# comment\nvalue = f(x)\n", "value = f(x)"),
        (" \nx", " "),  # only newlines are stripped; a blank line is a line
        ("", ""),
        ("a`b\nurl = 'http://x'\nok()", "ok()"),  # '//' inside a string also disqualifies
    ],
)
def test_first_code_line(prediction: str, line: str) -> None:
    assert scoring.first_code_line(prediction) == line


def test_code_sim_examples() -> None:
    assert scoring.code_sim_score("    return x\n", ["    return x"]) == 1.0
    assert scoring.code_sim_score("", ["x"]) == 0.0
    assert scoring.code_sim_score("", [""]) == 1.0  # fuzzywuzzy: equal strings score 100
    assert scoring.code_sim_score("abcd", ["abcf", "zzzz"]) == 0.75
    with pytest.raises(ValueError):
        scoring.code_sim_score("x", [])
