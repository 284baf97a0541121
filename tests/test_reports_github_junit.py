"""GitHub step summary (a real file appended to) and JUnit properties of results built here."""

from __future__ import annotations

import copy

from harness.reports import github, junit
from tests.reports_examples import META
from tests.reports_examples import results as example_results


def test_no_summary_without_the_variable(tmp_path):
    assert github.write_step_summary(example_results(), META, environ={}) is False
    assert list(tmp_path.iterdir()) == []


def test_summary_is_appended_as_a_scenario_by_cni_table(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    path.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    assert github.write_step_summary(example_results(), META) is True
    text = path.read_text()
    assert text.startswith("# earlier step\n")
    lines = text.splitlines()
    header = lines.index("| scenario | enforcing | open |")
    assert lines[header + 1] == "|---|---|---|"
    assert lines[header + 2] == ("| deny-all-ingress | :white_check_mark: passed (12 / 0 / 0 / 0) "
                                 "| :warning: xfailed (3 / 9 / 0 / 0) |")
    assert "> [!CAUTION]" in text and "**open**" in text and "false security" in text
    github.write_step_summary(example_results(), META)
    assert path.read_text().count("| scenario |") == 2


def test_summary_escapes_table_breaking_characters():
    rs = copy.deepcopy(example_results()[:1])
    rs[0].scenario = "a|b<i>"
    text = github.render_markdown(rs, META)
    row = next(line for line in text.splitlines() if line.startswith("| a"))
    assert row.startswith("| a\\|b&lt;i&gt; |") and row.count(" | ") == 1


def test_junit_properties_name_cni_backend_convergence_and_counts():
    rs = example_results()
    enforcing = next(r for r in rs if r.scenario == "allow-frontend-to-backend"
                     and r.profile == "enforcing")
    props = dict(junit.properties(enforcing))
    assert props["cni"] == "enforcing" and props["backend"] == "local"
    assert props["step1_convergence_seconds"] == "0.420"
    assert props["step2_convergence_seconds"] == "0.730"
    assert props["verdict_pass"] == "24" and props["verdict_not_enforced"] == "0"
    assert props["enforcing_cluster"] == "true"
    open_ = next(r for r in rs if r.scenario == "allow-frontend-to-backend" and r.profile == "open")
    props = dict(junit.properties(open_))
    assert props["step1_convergence_seconds"] == "not converged"
    assert props["verdict_not_enforced"] == "17" and props["outcome"] == "xfailed"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in junit.properties(open_))


def test_a_canary_contradicting_the_declaration_is_a_warning_in_the_summary():
    from harness.results import canary_contradiction
    text = canary_contradiction("flannel", False, True)
    meta = {**META, "canary": {"flannel": {"enforcing": True, "detail": "blocked",
                                           "declared_enforcing": False, "contradiction": text}}}
    md = github.render_markdown(example_results(), meta)
    assert "> [!WARNING]" in md and "flannel is declared not to enforce NetworkPolicy" in md
    assert canary_contradiction("flannel", False, False) is None
    assert canary_contradiction("flannel", False, None) is None


def test_a_partial_run_is_a_warning_in_the_summary():
    meta = {**META, "complete": False, "stopped": None, "unfinished": None}
    md = github.render_markdown(example_results(), meta)
    assert ("> [!WARNING]\n> This run is partial (no stop recorded: the run was killed "
            "(SIGKILL, a CI job's time limit) or is still running); which scenarios had not "
            "finished is not recorded") in md
    assert "This run is" not in github.render_markdown(example_results(), {**meta, "complete": True})
