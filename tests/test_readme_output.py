"""The README's "real output" of `armscope train` is laid out as the command prints it today.

The block under "Train from the command line" had drifted from the command's output; this test runs the
README's own command, with its output sent to a file, and compares the epoch the block shows: every word,
label and column, and each number's form (sign aside, its decimals). The values themselves are not
compared: a few hundred steps of training end elsewhere on another CPU's floating-point kernels (the
block recorded on an AVX2 machine reads arm_w 0.41 where an AVX-512 one prints 0.26). When they differ
it fails with the block to paste in.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Train from the command line"
NUMBER = re.compile(r"-?\d+(\.(\d+))?")


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    return text[start:text.index("\n## ", start + len(SECTION))]


def fenced_blocks(section: str) -> list[tuple[str, str]]:
    """The section's fenced blocks, as (language, body)."""
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)


def readme_command_and_block() -> tuple[list[str], list[str]]:
    """The command the section runs and the output block it says is real."""
    blocks = fenced_blocks(readme_section())
    command = next(body for language, body in blocks if language == "bash").strip()
    output = next(body for language, body in blocks if language == "" and body.startswith("epoch "))
    return shlex.split(command), output.rstrip("\n").splitlines()


def masked(lines: list[str]) -> list[list[str]]:
    """Each line's words, every number replaced by its form: an integer, or a decimal with so many places."""

    def form(match: re.Match[str]) -> str:
        return f"<{len(match.group(2))} places>" if match.group(1) else "<integer>"

    return [NUMBER.sub(form, line).split() for line in lines]


@pytest.mark.service  # the README's command, in a process of its own
def test_the_readmes_real_output_is_what_train_prints(tmp_path):
    command, block = readme_command_and_block()
    assert command[:2] == ["armscope", "train"], command
    epoch = int(block[0].split()[1])
    # The epochs after the one shown change nothing in it (no schedule depends on the run's length): stop there.
    arguments = command[2:]
    arguments[arguments.index("--epochs") + 1] = str(epoch)
    log = tmp_path / "train.log"
    with log.open("w") as stdout:
        subprocess.run([sys.executable, "-m", "armscope", "train", *arguments, "--out", str(tmp_path / "run")],
                       stdout=stdout, stderr=subprocess.STDOUT, check=True, cwd=tmp_path, timeout=600)
    printed = log.read_text().splitlines()
    first = next(i for i, line in enumerate(printed) if line.startswith(f"epoch {epoch}  loss "))
    shown = printed[first:first + len(block)]
    fresh = "\n".join(line.rstrip() for line in shown)
    assert masked(shown) == masked(block), (
        f"The README's real output (under {SECTION!r}) is not what `{shlex.join(command)}` prints now for "
        f"epoch {epoch}. Replace that block with:\n```\n{fresh}\n```\nand check the prose around it still holds."
    )
