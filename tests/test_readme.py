"""The README's Python examples run as doctests, in order, as a reader would type them."""

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def test_every_python_block_of_the_readme_is_a_doctest():
    blocks = PYTHON_BLOCK.findall(README.read_text())
    assert blocks and all(block.startswith(">>> ") for block in blocks)


def test_the_readme_examples_pass():
    text = README.read_text()
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    names: dict = {}
    for match in PYTHON_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(1))
        runner.run(parser.get_doctest(match.group(1), names, "README.md", str(README), line), clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0
