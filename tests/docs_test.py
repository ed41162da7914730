"""Every code block of docs/ runs as written (README.md's Python example:
tests/readme_test.py).

Python blocks of one page run in order, in one namespace, in a fresh folder
where `../shared/data` holds a small synthetic CIFAR-10 JPEG archive (the
layout of the README's commands). Shell blocks are not run, but every
`python -m balpoe_keras.experiments.run ...` command in them must parse into
a valid configuration (its flags and flagfiles exist and validate). A block
preceded by `<!-- docs-test: skip (reason) -->` is skipped; the reason is
on the page.
"""

import contextlib
import glob
import os
import re
import shlex

import pytest
from absl.testing import parameterized

from tests.cifar_archive import write_cifar_archive
from tests.experiments.flags_util import parse
from tests.test_case import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
_BLOCK = re.compile(r"(<!-- docs-test: skip[^>]*-->\s*)?```(\w*)\n(.*?)```",
                    re.S)
_SHELL = ("bash", "sh", "shell")
_RUN = "balpoe_keras.experiments.run"


def code_blocks(path, languages):
    """`[(line, code)]` of the blocks of `languages` not marked to skip."""
    with open(path) as f:
        text = f.read()
    return [(text[:m.start(2)].count("\n"), m.group(3))
            for m in _BLOCK.finditer(text)
            if m.group(2) in languages and not m.group(1)]


def runner_commands(code):
    """The `python -m balpoe_keras.experiments.run` commands of a shell
    block, as argument lists after the module name."""
    joined = code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if f"-m {_RUN}" not in line:
            continue
        for part in re.split(r"&&|;", line):
            words = shlex.split(part)
            if _RUN in words:
                commands.append(words[words.index(_RUN) + 1:])
    return commands


def _rooted(arg):
    """A `--flagfile=` of a documented command, found from the repository
    (`experiments/x.flags`) or from `experiments/` (`cd experiments && ...
    --flagfile=x.flags`)."""
    if not arg.startswith("--flagfile="):
        return arg
    path = arg.split("=", 1)[1]
    for folder in (ROOT, os.path.join(ROOT, "experiments")):
        if os.path.exists(os.path.join(folder, path)):
            return f"--flagfile={os.path.join(folder, path)}"
    return arg


@contextlib.contextmanager
def _working_folder(tmp):
    work = os.path.join(tmp, "work")
    data = os.path.join(tmp, "shared", "data")
    os.makedirs(work)
    os.makedirs(data)
    write_cifar_archive(data, train_per_class=100, test_per_class=10)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(cwd)


@pytest.mark.large
@pytest.mark.tf_only
class PythonBlocksTest(TestCase):
    @parameterized.parameters(*[os.path.basename(p) for p in PAGES])
    def test_blocks_run_in_order(self, page):
        blocks = code_blocks(os.path.join(ROOT, "docs", page), ("python",))
        if not blocks:
            self.skipTest(f"{page} has no Python block")
        namespace = {"__name__": f"docs.{page}"}
        with _working_folder(self.get_temp_dir()):
            for line, code in blocks:
                try:
                    exec(compile(code, f"docs/{page}:{line + 1}", "exec"),
                         namespace)
                except Exception as e:
                    raise AssertionError(
                        f"docs/{page}, block at line {line + 1}: "
                        f"{type(e).__name__}: {e}") from e


class ShellCommandsTest(TestCase):
    def test_runner_commands_parse(self):
        pages = PAGES + [os.path.join(ROOT, "README.md")]
        checked = 0
        for path in pages:
            for line, code in code_blocks(path, _SHELL):
                for argv in runner_commands(code):
                    argv = [_rooted(a) for a in argv]
                    if not any(a.startswith("--flagfile") for a in argv):
                        continue  # A fragment (e.g. flags after ...).
                    if not any(a.startswith("--workdir") for a in argv):
                        argv.append("--workdir=/tmp/unused")
                    argv = self._with_a_folder(argv)
                    try:
                        parse(*argv)
                    except Exception as e:
                        raise AssertionError(
                            f"{os.path.relpath(path, ROOT)}:{line + 1}: "
                            f"{argv}: {e}") from e
                    checked += 1
        self.assertGreaterEqual(checked, 5)

    def _with_a_folder(self, argv):
        """An image-folder command reads a folder the docs name (e.g.
        `my_images/...`); it is checked against a generated one."""
        if not any(a.startswith("--flagfile") and a.endswith(
                "image_folder.flags") for a in argv):
            return argv
        from tests.experiments.image_folder_test import write_folder

        root = self.get_temp_dir()
        write_folder(root, [100, 100], test_per_class=1, sides=(8, 8))
        return [f"--data_dir={root}" if a.startswith("--data_dir=") else a
                for a in argv]
