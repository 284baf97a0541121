"""The HTML report parsed back with the stdlib parser: structure, colours, tooltips, escaping,
and nothing loaded from outside the file."""

from __future__ import annotations

import copy
from html.parser import HTMLParser

from harness.reports import html_report
from harness.results import Attempt, CellResult, ScenarioResult, StepResult
from tests.reports_examples import META
from tests.reports_examples import results as example_results


class Page(HTMLParser):
    """Collects every start tag with its attributes, and the page's text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, tag: str, cls: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def render(tmp_path, results, meta=META) -> tuple[str, Page]:
    path = tmp_path / "report" / "r.html"
    html_report.write(results, path, meta)
    text = path.read_text()
    return text, Page(text)


def test_self_contained_no_script_no_external_asset(tmp_path):
    text, page = render(tmp_path, example_results())
    names = {t for t, _ in page.tags}
    assert "script" not in names and "link" not in names and "img" not in names
    assert "style" in names
    for _, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith("#"), (key, value)
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_header_names_backend_cnis_run_and_canaries(tmp_path):
    _, page = render(tmp_path, example_results())
    body = " ".join(page.text)
    assert "7f3a9c" in body and "enforcing, open" in body
    assert len(page.with_class("div", "banner")) == 1
    assert [a["class"] for a in page.with_class("div", "canary")] == \
        ["canary enforcing", "canary not-enforcing"]
    _, page = render(tmp_path, example_results(), {**META, "canary": {"enforcing": True}})
    assert page.with_class("div", "banner") == []


def test_comparison_grid_links_to_sections_that_exist(tmp_path):
    _, page = render(tmp_path, example_results())
    cells = page.with_class("td", "outcome")
    assert sorted(a["class"] for a in cells).count("outcome outcome-passed") == 3
    assert sorted(a["class"] for a in cells).count("outcome outcome-xfailed") == 3
    ids = {a.get("id") for _, a in page.tags if a.get("id")}
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert len(links) == 6 and all(h[1:] in ids for h in links)


def test_each_probe_is_one_coloured_cell_with_its_reason_and_attempts_as_tooltip(tmp_path):
    rs = example_results()
    _, page = render(tmp_path, rs)
    rendered = [c for r in rs for s in r.steps for c in s.cells]   # baselines all pass: not shown
    observed = [a for t, a in page.tags if t == "td" and (a.get("class") or "").startswith("v-")]
    assert len(observed) == len(rendered)
    for verdict, cls in [("pass", "v-pass"), ("not enforced", "v-not-enforced"),
                         ("not asserted", "v-not-asserted")]:
        assert len(page.with_class("td", cls)) == sum(c.verdict == verdict for c in rendered)
    dns = [a for a in page.with_class("td", "v-not-enforced") if "dns:" in a["title"]]
    assert dns and "why: DNS pitfall" in dns[0]["title"]
    assert "r1-r4 dns-resolved" in dns[0]["title"]
    assert len(page.with_class("td", "exp-deny")) == sum(c.expected == "deny" for c in rendered)


def test_probe_error_and_over_blocked_get_their_own_colour(tmp_path):
    cells = [CellResult("x/a", "x/b", "80", "TCP", "allow", "blocked", "over-blocked", "not isolated",
                        [Attempt(1, "timeout", 1.0, None, "curl: (28)", True)]),
             CellResult("x/a", "x/c", "80", "TCP", "deny", "tool-error", "probe error", "",
                        [Attempt(1, "tool-error", 0.1, None, "exec failed", None)])]
    r = ScenarioResult("s", "s.yaml", "kind", "calico", "r1", outcome="failed",
                       steps=[StepResult(1, "t", False, None, 3, cells)])
    _, page = render(tmp_path, [r], {"backend": "kind", "cnis": ["calico"], "run_id": "r1"})
    assert len(page.with_class("td", "v-over-blocked")) == 1
    [pe] = page.with_class("td", "v-probe-error")
    assert "exec failed" in pe["title"]
    assert len(page.with_class("span", "verdict")) == 2       # both explained under the table


def test_everything_from_the_results_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    rs = copy.deepcopy(example_results()[:1])
    rs[0].scenario = evil
    rs[0].description = '"><img src=x onerror=alert(1)>'
    rs[0].steps[0].cells[1].reason = evil
    rs[0].steps[0].cells[1].source = "x/<b>"
    text, page = render(tmp_path, rs, {**META, "run_id": evil, "canary": {evil: False}})
    names = [t for t, _ in page.tags]
    assert "script" not in names and "img" not in names
    assert "<script>" not in text and "<img" not in text and "x/<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_comparison_counts_probes_where_cnis_differ(tmp_path):
    rs = example_results()
    _, page = render(tmp_path, rs)
    text = "".join(page.text)
    assert "probes where the CNIs differ" in text
    # open fails to enforce exactly the deny cells: 9, 17 and 5 of 16, 32 and 7 step probes
    assert [a for a in page.with_class("td", "disagree")] == [{"class": "disagree"}] * 3
    assert "9 of 16" in text and "17 of 32" in text and "5 of 7" in text
    _, single = render(tmp_path, [r for r in rs if r.profile == "open"])
    assert single.with_class("td", "disagree") == []


def test_a_probe_missing_on_one_cni_counts_as_a_difference():
    from harness.reports.matrix import disagreements
    a, b = [copy.deepcopy(r) for r in example_results() if r.scenario == "deny-all-ingress"]
    assert disagreements([a, copy.deepcopy(a)]) == (0, 16)
    del a.steps[0].cells[3]                 # prod/frontend -> dev/tools: allowed, passes on both
    assert disagreements([a, b]) == (10, 16)


def test_long_lists_of_differing_cells_are_folded(tmp_path, monkeypatch):
    rs = example_results()
    _, page = render(tmp_path, rs)
    assert sum(t == "details" for t, _ in page.tags) == len(rs)          # one per result only
    monkeypatch.setattr(html_report, "FOLD_DIFFS_OVER", 5)
    _, page = render(tmp_path, rs)
    # the open profile's tables with more than 5 differing cells: deny-all (9), two steps of
    # allow-frontend-to-backend (9, 8); restrict-egress 80/TCP has only 4
    assert sum(t == "details" for t, _ in page.tags) == len(rs) + 3
    assert len(page.with_class("span", "verdict")) == 9 + 9 + 8 + 4 + 1


def test_a_canary_contradicting_the_declaration_is_a_banner():
    from harness.reports import html_report
    from harness.results import canary_contradiction
    from tests.reports_examples import META
    from tests.reports_examples import results as example_results
    text = canary_contradiction("open", False, True)
    meta = {**META, "canary": {"open": {"enforcing": True, "detail": "blocked",
                                        "declared_enforcing": False, "contradiction": text}}}
    page = html_report.render(example_results(), meta)
    assert 'role="alert">open: the enforcement canary contradicts the declaration' in page


def test_a_partial_run_says_so_in_a_banner(tmp_path):
    """A run stopped before its end (results file v6, meta.complete false) is said partial at
    the top, with what stopped it and what it had not finished; a complete run says nothing."""
    partial = {**META, "canary": {"enforcing": True}, "complete": False, "stopped": "SIGTERM",
               "unfinished": [{"scenario": "restrict-egress", "path": "x.yaml", "cni": "open"}]}
    _, page = render(tmp_path, example_results(), partial)
    banners = page.with_class("div", "banner")
    assert len(banners) == 1
    assert ("this run is partial (stopped by SIGTERM); 1 scenario(s) had not finished: "
            "restrict-egress [open]") in " ".join(page.text)
    done = {**partial, "complete": True, "stopped": None, "unfinished": []}
    assert render(tmp_path, example_results(), done)[1].with_class("div", "banner") == []
