"""The JSON results file: written, read back identical, versioned, and refusing what it is not."""

from __future__ import annotations

import json

import pytest

from harness.reports import json_report
from tests.reports_examples import META
from tests.reports_examples import results as example_results


def test_round_trip_keeps_every_probe_and_attempt(tmp_path):
    rs = example_results()
    path = tmp_path / "out" / "results.json"
    json_report.write(rs, path, META)
    meta, back = json_report.read(path)
    assert meta == META
    assert back == rs                                     # dataclass equality: every field


def test_document_has_format_probes_attempts_and_convergence(tmp_path):
    path = tmp_path / "r.json"
    json_report.write(example_results(), path, META)
    doc = json.loads(path.read_text())
    assert doc["format"] == "netpol-proof/results/v6"
    assert doc["meta"]["canary"]["open"]["enforcing"] is False
    scen = next(s for s in doc["scenarios"]
                if s["scenario"] == "restrict-egress" and s["profile"] == "open")
    assert scen["outcome"] == "xfailed"
    assert scen["verdict_counts"] == {"not asserted": 1, "not enforced": 5, "pass": 1}
    assert scen["convergence"] == [{"step": 1, "title": "restrict backend egress to 10.0.0.0/16",
                                    "converged": False, "seconds": None, "rounds": 8}]
    dns = next(c for c in scen["steps"][0]["cells"] if c["dns_name"])
    assert set(dns) >= {"source", "target", "port", "protocol", "expected", "observed", "verdict",
                        "reason", "attempts"}
    assert set(dns["attempts"][0]) >= {"round", "outcome", "elapsed", "answered_by", "detail"}
    assert dns["attempts"][0]["outcome"] == "dns-resolved"


def test_a_v1_file_is_still_read_and_a_run_names_its_observation_window(tmp_path):
    path = tmp_path / "old.json"
    json_report.write(example_results(), path, META)
    doc = json.loads(path.read_text())
    doc["format"] = "netpol-proof/results/v1"
    for s in doc["scenarios"]:           # what a v1 file lacks
        s.pop("scenario_error")
        for st in s["steps"]:
            for c in st["cells"]:
                for a in c["attempts"]:
                    a.pop("verdict")
    path.write_text(json.dumps(doc))
    _, back = json_report.read(path)
    assert len(back) == len(example_results())
    from harness.reports.write import run_meta
    from harness.settings import build
    meta = run_meta(build({"min_rounds": 4, "min_window": 2}, env={}), {}, "now")
    assert (meta["min_rounds"], meta["min_window"]) == (4, 2.0)


def test_no_temporary_file_is_left_beside_the_result(tmp_path):
    json_report.write(example_results(), tmp_path / "r.json", META)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("content, message", [
    ('{"format": "something/else", "scenarios": []}', "format is 'something/else'"),
    ("not json at all", "not a readable JSON results file"),
    ('[1, 2]', "format is 'list'"),
    ('{"format": "netpol-proof/results/v1", "scenarios": [{"scenario": "s1", "bogus": 1}]}',
     "scenarios[0] (s1) is malformed"),
])
def test_read_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(json_report.ResultsFileError) as err:
        json_report.read(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_read_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(json_report.ResultsFileError, match="--netpol-json"):
        json_report.read(tmp_path / "missing.json")


def test_a_v4_fault_timeline_is_still_read(tmp_path):
    """v5 added a watched cell's max_gap: a v4 file has none, and reads back with None."""
    from harness.results import Attempt, FaultEvent, FaultTimeline, StepResult, WatchedCell
    rs = example_results()
    watched = WatchedCell("y/a", "x/a", "80", "TCP", "deny", "deny", "held",
                          attempts=[Attempt(1, "timeout", 1.0, verdict="pass", at=-0.5)],
                          max_gap=0.5)
    rs[0].steps.append(StepResult(9, "stop", True, 0.0, 2, [], fault=FaultTimeline(
        [FaultEvent("stop engine", 0.0, 0.01)], 0.5, -1.0, 3.0, 6, cells=[watched])))
    path = tmp_path / "v4.json"
    json_report.write(rs, path, META)
    doc = json.loads(path.read_text())
    doc["format"] = "netpol-proof/results/v4"
    cell = doc["scenarios"][0]["steps"][-1]["fault"]["cells"][0]
    assert cell.pop("max_gap") == 0.5
    path.write_text(json.dumps(doc))
    _, back = json_report.read(path)
    assert back[0].steps[-1].fault.cells[0].max_gap is None
    assert back[0].steps[-1].fault.cells[0].status == "held"


def test_checkpoints_write_the_same_document_as_write(tmp_path):
    """The file rewritten as a run goes (each result serialized once) is the file `write`
    writes, byte for byte, at every length."""
    rs = example_results()
    cp = json_report.Checkpoints(tmp_path / "cp.json")
    for n in range(len(rs) + 1):
        meta = {**META, "complete": False, "stopped": None, "unfinished": []}
        cp.write(rs[:n], meta)
        json_report.write(rs[:n], tmp_path / "w.json", meta)
        assert (tmp_path / "cp.json").read_text() == (tmp_path / "w.json").read_text()
        assert json_report.read(tmp_path / "cp.json")[1] == rs[:n]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json", "w.json"]  # no temp file


PARTIAL = {"complete": False, "stopped": "SIGTERM",
           "unfinished": [{"scenario": "restrict-egress", "path": "s.yaml", "cni": "open"}]}


def test_progress_of_partial_complete_and_older_files(tmp_path):
    path = tmp_path / "r.json"
    json_report.write(example_results(), path, {**META, **PARTIAL})
    p = json_report.progress(json_report.read(path)[0])
    assert p.partial and p.unfinished == (("restrict-egress", "open"),)
    assert p.sentence() == ("partial (stopped by SIGTERM); 1 scenario(s) had not finished: "
                            "restrict-egress [open]")
    killed = json_report.progress({"complete": False, "stopped": None, "unfinished": None})
    assert "killed" in killed.sentence() and "not recorded" in killed.sentence()
    assert not json_report.progress({"complete": True, "stopped": None, "unfinished": []}).partial
    # a v5 file says nothing of whether its run ended: read as before, not called partial
    doc = json.loads(path.read_text())
    doc["format"] = "netpol-proof/results/v5"
    for key in PARTIAL:
        doc["meta"].pop(key)
    path.write_text(json.dumps(doc))
    meta, back = json_report.read(path)
    p = json_report.progress(meta)
    assert p.complete is None and not p.partial and p.sentence() == "" and back


@pytest.mark.parametrize("field,value,says", [
    ("complete", "no", "meta.complete is 'no', expected true or false"),
    ("stopped", 15, "meta.stopped is 15, expected a string"),
    ("unfinished", "all", "meta.unfinished is 'all', expected a list"),
    ("unfinished", [{"scenario": "x"}], "meta.unfinished[0] is {'scenario': 'x'}, expected"),
])
def test_malformed_progress_is_refused_naming_file_and_field(tmp_path, field, value, says):
    path = tmp_path / "bad.json"
    json_report.write(example_results(), path, {**META, **PARTIAL, field: value})
    with pytest.raises(json_report.ResultsFileError) as err:
        json_report.read(path)
    assert str(err.value).startswith(f"{path}: ") and says in str(err.value)


def test_progress_as_a_run_goes_and_ends(tmp_path):
    """Partial until the run ends; complete only when it ended unstopped with a result for all it
    meant to run; one that ended with some unrun (a CNI not brought up) says so, not 'killed'."""
    rs = example_results()
    cp = json_report.Checkpoints(None)
    cp.planned = [(r.scenario, r.path, r.profile) for r in rs]
    assert cp.progress([], False)["unfinished"] == [
        {"scenario": r.scenario, "path": r.path, "cni": r.profile} for r in rs]
    assert cp.progress(rs, False)["complete"] is False          # all done, not yet ended
    assert cp.progress(rs, True) == {"complete": True, "stopped": None, "unfinished": []}
    ended = cp.progress(rs[:1], True)
    assert ended["complete"] is False and ended["stopped"] == json_report.ENDED_SHORT
    assert json_report.progress(ended).sentence().startswith(
        f"partial ({json_report.ENDED_SHORT}); {len(rs) - 1} scenario(s) had not finished")
    cp.stopped = "SIGTERM"
    assert cp.progress(rs, True)["complete"] is False and cp.progress(rs, True)["stopped"] == "SIGTERM"
    cp.planned = None                                           # not told (pytest-xdist)
    assert cp.progress(rs, False)["unfinished"] is None
    assert cp.extra(rs[:1]) == [] and cp.finish(rs[1]) is rs[1] and cp.extra(rs[:1]) == [rs[1]]
