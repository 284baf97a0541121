"""Regenerate and check the command outputs shown in the labs (docs/labs/*.md).

Why: a lab that shows an output the command no longer prints teaches the wrong thing. Every
output block in a lab is written by this module from a real run of the command named in the
`<!-- lab-command: ... -->` marker above it, with volatile parts (run ids, timings, round
counts, a fault timeline's window bounds and attempts per run of a strip) normalised, so
`make labs` refreshes them and tests/test_labs.py proves they are current.

A block looks like this in the Markdown source:

    <!-- lab-command: python -m harness expect scenarios/canary/false-security-canary.yaml -->
    ```console
    $ python -m harness expect scenarios/canary/false-security-canary.yaml
    ...output...
    ```

Usage: python -m harness.labs regenerate docs/labs   |   python -m harness.labs check docs/labs
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from harness.backends.real.engines import ENGINES
from harness.components import available, default_names
from harness.errors import HarnessError
from harness.shell import run

#: The marker line, then a ```console fence whose content this module owns.
BLOCK_RE = re.compile(
    r"<!-- lab-command: (?P<command>[^\n]+?) -->\n```console\n(?P<body>.*?)```", re.S)
#: Only harness commands run: a lab is documentation, never a way to run arbitrary programs.
COMMAND_PREFIX = ("python", "-m", "harness")
#: A local run builds network namespaces: without root it cannot start.
ROOT_SUBCOMMANDS = {"run"}
COMMAND_TIMEOUT = 600.0


class LabError(HarnessError):
    """A lab file holds a block this module cannot regenerate (bad command, failed start)."""


@dataclass(frozen=True)
class LabBlock:
    """One generated output block of a lab file."""

    path: str
    line: int          # 1-based line of the lab-command marker
    command: str
    body: str          # the block's current content (without the fences)
    start: int         # offsets of the body in the file text
    end: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def find_blocks(text: str, path: str = "<lab>") -> list[LabBlock]:
    """Every `lab-command` block of a Markdown text, in file order."""
    return [LabBlock(path, text.count("\n", 0, m.start()) + 1, m.group("command").strip(),
                     m.group("body"), m.start("body"), m.end("body"))
            for m in BLOCK_RE.finditer(text)]


def lab_argv(command: str, where: str = "<lab>") -> list[str]:
    """The argv a marker's command runs as: `python -m harness ...` with this interpreter."""
    words = shlex.split(command)
    if tuple(words[:3]) != COMMAND_PREFIX or len(words) < 4:
        raise LabError(f"{where}: lab-command {command!r}: only `python -m harness SUBCOMMAND ...` "
                       "commands can be regenerated; write the command that way")
    return [sys.executable, "-m", "harness", *words[3:]]


def needs_root(command: str) -> bool:
    """True when the command brings up the local or the realnodes backend (network namespaces
    need root)."""
    words = shlex.split(command)
    if len(words) < 4 or words[3] not in ROOT_SUBCOMMANDS:
        return False
    return _backend(words) in ("local", "realnodes")


def _backend(words: list[str]) -> str:
    return words[words.index("--backend") + 1] if "--backend" in words[:-1] else "local"


def needs_components(command: str) -> str | None:
    """Why the command cannot run here when it needs the real components (a `run` on the real
    engines: kube-router, calico, none; any `run` on real nodes) and one is missing; None when
    it can run."""
    words = shlex.split(command)
    if len(words) < 4 or words[3] not in ROOT_SUBCOMMANDS:
        return None
    # real nodes run real components whatever the CNI; the local backend for its real engines
    if _backend(words) != "realnodes" and ("--cni" not in words[:-1] or not set(
            words[words.index("--cni") + 1].split(",")) & set(ENGINES)):
        return None
    why = [reason for name in default_names() for ok, reason in [available(name)] if not ok]
    return "; ".join(why) or None


#: the options of a lab command whose value is a file it writes
WRITING_OPTIONS = ("--json", "--netpol-json", "--html", "--netpol-html")
#: the subcommands whose positional arguments are results files they read
READING_SUBCOMMANDS = {"compare"}


def files_written(command: str) -> set[str]:
    """The files a lab command writes (`run ... --json PATH`, `compare ... --html PATH`)."""
    words = shlex.split(command)
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w in WRITING_OPTIONS}


def files_read(command: str) -> set[str]:
    """The results files a lab command reads (`compare A.json B.json`)."""
    words = shlex.split(command)
    if len(words) < 4 or words[3] not in READING_SUBCOMMANDS:
        return set()
    values = {i + 1 for i, w in enumerate(words) if w in WRITING_OPTIONS}
    return {w for i, w in enumerate(words[4:], 4) if not w.startswith("-") and i not in values}


def chains(blocks: Iterable[LabBlock]) -> list[list[LabBlock]]:
    """The blocks grouped so that a block reading a file that an earlier block of the same lab
    writes runs after it, in file order (lab 09 compares two runs' results files); every other
    block is a chain of its own. Why: the labs test checks blocks apart (and in parallel), and
    `compare` shown alone would read files no block has written yet."""
    out: list[list[LabBlock]] = []
    writer: dict[tuple[str, str], list[LabBlock]] = {}
    for block in blocks:
        joined = [writer[(block.path, f)] for f in sorted(files_read(block.command))
                  if (block.path, f) in writer]
        chain = joined[0] if joined else []
        for other in joined[1:]:
            if other is not chain:
                chain.extend(other)
                out.remove(other)
                for key, value in writer.items():
                    if value is other:
                        writer[key] = chain
        if not chain:
            out.append(chain)
        chain.append(block)
        chain.sort(key=lambda b: b.start)
        for f in files_written(block.command):
            writer[(block.path, f)] = chain
    return out


_RUN_ID_RE = re.compile(r"run-id=([a-z0-9]{4,8})\b")
_VOLATILE = [
    # durations and duration ranges: 0.024-0.045s, 12.78s, after 36 ms
    (re.compile(r"\b\d+\.\d+(?:-\d+\.\d+)?s\b"), "N.NNs"),
    (re.compile(r"\bafter \d+ ms\b"), "after N ms"),
    # how many probe rounds it took depends on the machine's load, not on the policy
    (re.compile(r"\b\d+ round\(s\)"), "N round(s)"),
    (re.compile(r"\b\d+ rounds?\b(?!\()"), "N rounds"),
    (re.compile(r"\br\d+(?:-r\d+)?(?= )"), "rN"),
    # scenarios at once follow the machine's cores; which cluster a scenario gets, the load
    (re.compile(r"\bjobs=\d+\b"), "jobs=N"),
    # whether a scenario gets a cluster brought up for it or a free one depends on timing
    (re.compile(r"^ *bringing up \S+ cluster \d+ \(run RUNID\) \.\.\.\n", re.M), ""),
    # a fault step's timeline (docs/scenarios.md, "Fault steps"): the bounds of a window and of
    # a change's time to take effect ("fails open for 2.5-4.1 s", "0.1-0.6 s after recovery",
    # "rounds at most 1.17 s apart") and how many attempts a window held follow the spacing of
    # the rounds; the words around them (held, fails open, fails closed, on which action,
    # before or after recovery) are what a lab teaches, and stay
    (re.compile(r"\b\d+\.\d+[-\u2013]\d+\.\d+ s\b"), "N.N-N.N s"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N.N s"),
    (re.compile(r"\b\d+ bad attempt\(s\)"), "N bad attempt(s)"),
    # `compare` names each results file's run: "(run 02cd97, backend local, ...)"
    (re.compile(r"\(run [a-z0-9]{4,8}, "), "(run RUNID, "),
    # a real engine started again by a fault step: its new process id
    (re.compile(r"\(pid \d+\)"), "(pid N)"),
]
#: a watched cell's strip (harness.reports.terminal): one symbol per attempt, '|' per action
_STRIP_RE = re.compile(r"^(?P<indent> +)(?P<strip>[.OC?|-]*\|[.OC?|-]*)$", re.M)


def normalise(output: str) -> str:
    """The output with run ids, timings and round counts replaced by fixed stand-ins."""
    for run_id in set(_RUN_ID_RE.findall(output)):
        output = re.sub(rf"\b{re.escape(run_id)}[a-z0-9]?\b", "RUNID", output)
        # the clusters of scenarios run at once (harness.scheduler.slot_run_id)
        output = re.sub(rf"\b{re.escape(run_id[:5])}[a-z0-9]{{3}}\b", "RUNID", output)
    for pattern, stand_in in _VOLATILE:
        output = pattern.sub(stand_in, output)
    output = _STRIP_RE.sub(lambda m: m["indent"] + collapse_strip(m["strip"]), output)
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(_sorted_runs(lines, _BROUGHT_UP))


def collapse_strip(strip: str) -> str:
    """A timeline strip with every run of one symbol between actions shown once: how many
    attempts fell between two actions is the rounds' spacing, which symbols did, and in which
    order, is what the cell did (`..||OOOOOO|.....` and `.||OOOOOOO|...` are both `.||O|.`)."""
    return re.sub(r"([.OC?-])\1+", r"\1", strip)


#: a real cluster's bring-up line (on stderr): clusters of scenarios run at once come up in an
#: order that depends on timing, so a run of these lines is shown sorted
_BROUGHT_UP = re.compile(r"^\[\S+/\S+\] up in ")


def _sorted_runs(lines: list[str], pattern: re.Pattern[str]) -> list[str]:
    """`lines` with every run of consecutive lines matching `pattern` sorted."""
    out: list[str] = []
    run: list[str] = []
    for line in lines + [""]:
        if pattern.match(line):
            run.append(line)
            continue
        out += sorted(run) + [line]
        run = []
    return out[:-1]


def run_command(command: str, cwd: Path, where: str = "<lab>") -> tuple[int, str]:
    """Run one lab command in the repository root; (exit status, stdout then stderr)."""
    argv = lab_argv(command, where)
    env = dict(os.environ, PYTHONPATH=str(cwd), COLUMNS="100", NO_COLOR="1")
    old = os.getcwd()
    os.chdir(cwd)  # shell.run has no cwd parameter; the harness resolves paths from the cwd
    try:
        result = run(argv, timeout=COMMAND_TIMEOUT, env=env, doing=f"{where}: running the lab command")
    finally:
        os.chdir(old)
    return result.returncode, result.stdout + result.stderr


def render(command: str, returncode: int, output: str) -> str:
    """The body of a block: the prompt line, the normalised output, the exit status if not 0."""
    text = f"$ {command}\n"
    shown = normalise(output)
    if shown:
        text += shown + "\n"
    if returncode != 0:
        text += f"(exit status {returncode})\n"
    return text


def repo_root(path: Path) -> Path:
    """The repository a lab belongs to: the nearest ancestor holding harness/ and scenarios/."""
    for parent in path.resolve().parents:
        if (parent / "harness").is_dir() and (parent / "scenarios").is_dir():
            return parent
    raise LabError(f"{path}: not inside a netpol-proof checkout (no ancestor with harness/ and "
                   "scenarios/); run from the repository")


Runner = Callable[[str, Path, str], "tuple[int, str]"]


def regenerate_text(text: str, path: str, root: Path, runner: Runner = run_command) -> str:
    """The lab text with every block's body replaced by the fresh output of its command."""
    out, last = [], 0
    for block in find_blocks(text, path):
        code, output = runner(block.command, root, block.where)
        out.append(text[last:block.start])
        out.append(render(block.command, code, output))
        last = block.end
    out.append(text[last:])
    return "".join(out)


def lab_files(paths: Iterable[str]) -> list[Path]:
    """The lab Markdown files under the given files or directories, in name order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.glob("*.md")))
        elif p.is_file():
            found.append(p)
        else:
            raise LabError(f"{p}: no such file or directory")
    return found


def stale_blocks(path: Path, runner: Runner = run_command) -> list[str]:
    """A diff per block of `path` whose shown output differs from the command's real output."""
    text = path.read_text()
    root = repo_root(path)
    problems = []
    for block in find_blocks(text, str(path)):
        code, output = runner(block.command, root, block.where)
        fresh = render(block.command, code, output)
        if fresh != block.body:
            diff = difflib.unified_diff(block.body.splitlines(), fresh.splitlines(),
                                        "shown", "actual", lineterm="", n=1)
            problems.append(f"{block.where}: output of `{block.command}` is stale:\n"
                            + "\n".join(diff))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.labs",
        description="Regenerate (or check) the command outputs shown in lab Markdown files.")
    parser.add_argument("action", choices=["regenerate", "check"])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="lab files or directories")
    args = parser.parse_args(argv)
    try:
        files = lab_files(args.paths)
        if args.action == "regenerate":
            for path in files:
                text = path.read_text()
                new = regenerate_text(text, str(path), repo_root(path))
                if new != text:
                    path.write_text(new)
                print(f"{'updated' if new != text else 'current'} {path} "
                      f"({len(find_blocks(text))} block(s))")
            return 0
        stale = [p for path in files for p in stale_blocks(path)]
        for problem in stale:
            print(problem)
        print(f"{len(files)} lab file(s) checked: {len(stale)} stale block(s)"
              + ("; run `make labs` to regenerate" if stale else ""))
        return 1 if stale else 0
    except HarnessError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1

