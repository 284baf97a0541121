"""The labs (docs/labs/): every shown output is the current output of its command.

Why: a lab whose table no longer matches what the harness prints teaches the wrong thing. Each
`<!-- lab-command -->` block is run for real (the `run` blocks bring up the local backend, so they
need root) and compared, after normalisation, with the block in the Markdown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.labs import (
    LabError,
    chains,
    collapse_strip,
    files_read,
    files_written,
    find_blocks,
    lab_argv,
    lab_files,
    needs_components,
    needs_root,
    normalise,
    regenerate_text,
    render,
    run_command,
    stale_blocks,
)
from tests.conftest import live, local_backend_unavailable

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "docs" / "labs"
LAB_FILES = lab_files([str(LABS)])
BLOCKS = [b for path in LAB_FILES for b in find_blocks(path.read_text(), str(path.relative_to(ROOT)))]
EXPECTED_LABS = ["01-open-by-default.md", "02-default-deny.md", "03-allowing-one-path.md",
                 "04-egress-and-dns.md", "05-namespaces.md", "06-services-vs-policies.md",
                 "07-false-security.md", "08-agent-restarts.md", "09-migration-off-flannel.md"]
#: the blocks checked together, in order: a `compare` after the runs that write its files
CHAINS = chains(BLOCKS)


def _chain_id(chain):
    return chain[0].where if len(chain) == 1 else f"{chain[0].where}..{chain[-1].line}"


@pytest.mark.parametrize("chain", [
    pytest.param(c, id=_chain_id(c), marks=[live(local_backend_unavailable())]
                 if any(needs_root(b.command) for b in c) else []) for c in CHAINS])
def test_shown_output_is_current(chain):
    for block in chain:
        missing = needs_components(block.command)
        if missing:   # the real pair: shown as measured with the pinned components, checked where built
            pytest.skip(f"{block.where}: the real components are not built here: {missing}")
    for block in chain:
        code, output = run_command(block.command, ROOT, block.where)
        assert render(block.command, code, output) == block.body, (
            f"{block.where} is stale: run `make labs` (python -m harness.labs regenerate docs/labs)")


def test_a_compare_is_checked_after_the_runs_that_write_its_files():
    text = "".join(f"<!-- lab-command: {c} -->\n```console\n```\n" for c in [
        "python -m harness run s.yaml --backend local --cni open --json out/a.json",
        "python -m harness explain s.yaml --from x/a --to x/b --port 80",
        "python -m harness run s.yaml --backend local --cni enforcing --json out/b.json",
        "python -m harness compare out/a.json out/b.json --html out/c.html",
        "python -m harness compare out/c.html out/other.json"])
    blocks = find_blocks(text, "lab.md")
    assert files_written(blocks[0].command) == {"out/a.json"}
    assert files_read(blocks[3].command) == {"out/a.json", "out/b.json"}
    assert files_written(blocks[3].command) == {"out/c.html"}
    assert [[b.line for b in c] for c in chains(blocks)] == [[1, 7, 10, 13], [4]]
    # a file of the same name written in another lab is not this lab's: no chain across labs
    other = find_blocks("<!-- lab-command: python -m harness compare out/a.json out/b.json -->\n"
                        "```console\n```\n", "other.md")
    assert [[b.where for b in c] for c in chains(blocks + other)] == [
        ["lab.md:1", "lab.md:7", "lab.md:10", "lab.md:13"], ["lab.md:4"], ["other.md:1"]]


def test_the_course_is_complete_and_ordered():
    """Every lab has a goal, what to change, and runs, checks and explains something; each
    `run` is on a cluster this machine brings up itself (the local backend, or real nodes:
    lab 09's migration is off the real Flannel), never one the reader must have."""
    assert [p.name for p in LAB_FILES if p.name != "README.md"] == EXPECTED_LABS
    for name in EXPECTED_LABS:
        text = (LABS / name).read_text()
        commands = [b.command for b in find_blocks(text)]
        assert "## Goal" in text, name
        assert "what to change" in text.lower(), name
        runs = [c for c in commands if c.split()[3] == "run"]
        assert runs and all(("--backend local" in c or "--backend realnodes" in c)
                            for c in runs), name
        assert any(c.split()[3] == "explain" for c in commands), name
        assert any(c.split()[3] in ("expect", "check") for c in commands), name
    lab07 = [b.command for b in find_blocks((LABS / "07-false-security.md").read_text())]
    assert any("--cni open" in c for c in lab07) and any("--cni enforcing" in c for c in lab07)
    lab09 = [b.command for b in find_blocks((LABS / "09-migration-off-flannel.md").read_text())]
    assert any("--backend realnodes --cni flannel" in c for c in lab09)
    assert any("--backend realnodes --cni canal" in c for c in lab09)


def test_exercises_really_disagree_with_the_spec():
    """Each exercise holds a wrong guess: check fails on it, at the guessed probe's line."""
    exercises = sorted((LABS / "exercises").glob("*.yaml"))
    assert len(exercises) == 6
    for path in exercises:
        lines = path.read_text().splitlines()
        marked = [i for i, line in enumerate(lines, 1) if "# <- " in line]
        assert len(marked) == 1, path.name
        code, output = run_command(f"python -m harness check {path.relative_to(ROOT)}", ROOT)
        assert code == 1 and "the oracle computes" in output, output
        if "expect:" in lines[marked[0] - 1]:
            assert f"{path.name}:{marked[0]}:" in output, output


def test_a_stale_block_is_found_and_regenerated(tmp_path):
    # a throwaway checkout: the harness and the library linked in, one lab with a wrong output
    (tmp_path / "harness").symlink_to(ROOT / "harness")
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    lab = tmp_path / "docs" / "labs" / "99-test.md"
    lab.parent.mkdir(parents=True)
    command = ("python -m harness explain scenarios/canary/false-security-canary.yaml "
               "--from x/b --to x/a --port 80 --step 2")
    lab.write_text(f"# t\n\n<!-- lab-command: {command} -->\n```console\n$ {command}\n"
                   "x/b -> x/a on TCP 80: ALLOWED. (an outdated claim)\n```\ntail\n")
    problems = stale_blocks(lab)
    assert len(problems) == 1 and "99-test.md:3" in problems[0] and "outdated claim" in problems[0]
    new = regenerate_text(lab.read_text(), str(lab), tmp_path)
    assert "BLOCKED" in new and "outdated" not in new and new.endswith("```\ntail\n")
    lab.write_text(new)
    assert stale_blocks(lab) == []


def test_only_harness_commands_run():
    for bad in ["rm -rf /", "python -c 'print(1)'", "python -m harness", "bash -c x"]:
        with pytest.raises(LabError, match="only `python -m harness SUBCOMMAND"):
            lab_argv(bad, "lab.md:3")
    assert lab_argv("python -m harness check scenarios/")[1:] == ["-m", "harness", "check",
                                                                  "scenarios/"]


def test_needs_root_only_for_local_runs():
    assert needs_root("python -m harness run s.yaml --backend local --cni open")
    assert needs_root("python -m harness run s.yaml")  # local is the default backend
    assert needs_root("python -m harness run s.yaml --backend realnodes --cni flannel")
    assert not needs_root("python -m harness run s.yaml --backend kind")
    assert not needs_root("python -m harness explain s.yaml --from a --to b --port 80")


def test_normalise_replaces_what_changes_between_runs():
    # lines as `python -m harness run` prints them (from a run on this machine)
    raw = ("netpol-proof: backend=local cni=open run-id=88cfc4 probe-timeout=1s jobs=12\n"
           "bringing up local/open (run 88cfc4a) ...\n"
           "bringing up local/open cluster 2 (run 88cfc002) ...\n"
           "  baseline: 13 probes, all connected (1 round, 0.24s)\n"
           "    81 probes, 2 rounds, settled after 0.00s: 9 not asserted, 72 pass\n"
           "step 1: deny (converged in 0.0s, 2 round(s))\n"
           "    NOT ENFORCED  x/b -> x/a 80/TCP: [r1-r2 connected 0.024-0.045s by x/a (HTTP 200)] \n"
           "curl: (7) Failed to connect to 10.244.1.12 port 80 after 36 ms\n\n")
    assert normalise(raw) == (
        "netpol-proof: backend=local cni=open run-id=RUNID probe-timeout=1s jobs=N\n"
        "bringing up local/open (run RUNID) ...\n"
        "  baseline: 13 probes, all connected (N rounds, N.NNs)\n"
        "    81 probes, N rounds, settled after N.NNs: 9 not asserted, 72 pass\n"
        "step 1: deny (converged in N.NNs, N round(s))\n"
        "    NOT ENFORCED  x/b -> x/a 80/TCP: [rN connected N.NNs by x/a (HTTP 200)]\n"
        "curl: (7) Failed to connect to 10.244.1.12 port 80 after N ms")
    assert normalise(normalise(raw)) == normalise(raw)


#: a fault step's timeline as `python -m harness run scenarios/faults/engine-stop.yaml --backend
#: local --cni enforcing` printed it in two runs on this machine (trimmed to the fault step)
TIMELINE_RUN_2 = """\
    watched 2 cell(s) in 13 rounds from -2.00s to +9.07s:
      fails open for 2.5-4.2 s on stop engine (1 of 2 cells connected although denied)
  fault timeline: 13 rounds from -2.00s to +9.07s, at most 1.20s apart (t=0: the first action)
      +0.00s to +0.05s  stop engine: policy table removed
      +0.05s to +3.05s  wait 3 s
    y/a -> x/a 80/TCP (spec: deny): FAILED OPEN
      ..||OOOOOO|.....
      failed open 2.46-4.15s on stop engine: 6 bad attempt(s) from +0.35s to +2.85s
    x/a -> y/a 80/TCP (spec: allow): held
      ..||......|.....
  verdict: fails open for 2.5-4.2 s on stop engine (1 of 2 cells connected although denied)
"""
TIMELINE_RUN_3 = """\
    watched 2 cell(s) in 12 rounds from -2.01s to +8.96s:
      fails open for 2.5\u20134.1 s on stop engine (1 of 2 cells connected although denied)
  fault timeline: 12 rounds from -2.01s to +8.96s, at most 1.18s apart (t=0: the first action)
      +0.00s to +0.04s  stop engine: policy table removed
      +0.04s to +3.04s  wait 3 s
    y/a -> x/a 80/TCP (spec: deny): FAILED OPEN
      .||OOOOOOO|...
      failed open 2.48-4.18s on stop engine: 7 bad attempt(s) from +0.32s to +2.83s
    x/a -> y/a 80/TCP (spec: allow): held
      ...||.......|....
  verdict: fails open for 2.5\u20134.1 s on stop engine (1 of 2 cells connected although denied)
"""


def test_normalise_makes_two_runs_of_a_fault_timeline_the_same():
    shown = normalise(TIMELINE_RUN_2)
    assert shown == normalise(TIMELINE_RUN_3)
    assert normalise(shown) == shown
    lines = shown.splitlines()
    assert lines[1] == ("      fails open for N.N-N.N s on stop engine (1 of 2 cells connected "
                        "although denied)")
    assert lines[6:10] == ["      .||O|.",
                           "      failed open N.NNs on stop engine: N bad attempt(s) from +N.NNs "
                           "to +N.NNs",
                           "    x/a -> y/a 80/TCP (spec: allow): held",
                           "      .||.|."]


@pytest.mark.parametrize("changed", [
    # what the lab teaches stays checked: a window seen or not, its kind, the action it follows,
    # which side of an action an attempt fell, the sign of a time
    ("FAILED OPEN", "held"),
    ("fails open for 2.5-4.2 s", "fails closed for 2.5-4.2 s"),
    ("on stop engine (1", "on before the fault (1"),
    ("..||OOOOOO|.....", ".O||OOOOO|....."),
    ("..||OOOOOO|.....", "..||OOCOOO|....."),
    ("..||......|.....", "..||...?..|....."),
    ("from +0.35s", "from -0.35s"),
    ("(1 of 2 cells", "(2 of 2 cells"),
])
def test_normalise_keeps_what_a_timeline_says(changed):
    old, new = changed
    assert old in TIMELINE_RUN_2
    assert normalise(TIMELINE_RUN_2.replace(old, new, 1)) != normalise(TIMELINE_RUN_2)


def test_normalise_replaces_the_pid_of_a_real_engine_started_again():
    # as a fault step on kube-router prints it (docs/labs/08-agent-restarts.md)
    line = "      +3.04s to +3.05s  start engine: kube-router on np-c140c001-n1 started (pid 5567)"
    assert normalise(line) == ("      +N.NNs to +N.NNs  start engine: kube-router on "
                               "np-c140c001-n1 started (pid N)")


def test_collapse_strip():
    assert collapse_strip("..||OOOOOO|.....") == ".||O|."
    assert collapse_strip(".O||OOCC??O|..") == ".O||OC?O|."
    assert collapse_strip("|||") == "|||"
    # only strip lines are collapsed: a table rule or a dotted line without an action is not
    assert normalise("  -------  ------\n      ......\n      ..||..") == (
        "  -------  ------\n      ......\n      .||.")


def test_normalise_sorts_the_bring_up_lines_whose_order_is_timing():
    # clusters of scenarios run at once come up in either order (stderr, one line each)
    a, b = "[local/none] up in 9.10s: real kube-apiserver", "[local/kube-router] up in 14.50s: real"
    before, after = "!! banner", "done"
    shown = normalise("\n".join([before, a, b, a, after]))
    assert shown == normalise("\n".join([before, b, a, a, after]))
    assert shown.splitlines()[0] == before and shown.splitlines()[-1] == after
    assert shown.splitlines()[1].startswith("[local/kube-router]")


def test_render_shows_the_prompt_and_a_failing_exit_status():
    assert render("python -m harness check x", 1, "FAIL x\n") == (
        "$ python -m harness check x\nFAIL x\n(exit status 1)\n")
    assert render("python -m harness check x", 0, "") == "$ python -m harness check x\n"


def test_lab_files_names_a_missing_path():
    with pytest.raises(LabError, match="no-such-dir: no such file"):
        lab_files(["no-such-dir"])
