"""Parameters, plans and audit before/after as highlighted JSON/YAML and diffs: escaped, valid,
no Python reprs."""
import json
import re

import pytest
import yaml

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core import structured
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.templates import create_template, update_template
from tests import factories
from tests.helpers import act, person

VALUE = {"command": "uptime -a", "secret": "<secret>", "count": 3, "force": True, "user": None,
         "targets": ["web-1", {"name": "db", "tags": []}], "extra": {}, "on": "yes", "nested": {"a": {"b": 1.5}}}


def _text(html):
    return re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') \
        .replace("&#x27;", "'").replace("&amp;", "&")


def _code(html):
    return _text(re.search(r"<code>(.*)</code>", html, re.S).group(1))


def test_json_rendering_reads_back_as_the_same_value_with_no_python_reprs():
    html = structured.render(VALUE, "json")
    assert json.loads(_code(html)) == VALUE
    assert "None" not in html and "True" not in html
    assert '<span class="s-key">&quot;command&quot;</span>' in html and '<span class="s-bool">true</span>' in html
    assert '<span class="s-null">null</span>' in html and '<span class="s-num">3</span>' in html


def test_yaml_rendering_reads_back_as_the_same_value():
    assert yaml.safe_load(_code(structured.render(VALUE, "yaml"))) == VALUE


def test_markup_in_values_and_keys_is_escaped():
    html = structured.render({"<b>key</b>": "<script>alert(1)</script>"}, "yaml")
    assert "<script>" not in html and "<b>" not in html and "&lt;script&gt;" in html


def test_a_diff_marks_changed_lines_and_keeps_the_unchanged_ones():
    rows = structured.diff_rows({"a": 1, "b": "x"}, {"a": 2, "b": "x", "c": None})
    assert [(mark, "".join(t for _, t in line)) for mark, line in rows] == [
        ("-", "a: 1"), ("+", "a: 2"), (" ", "b: x"), ("+", "c: null")]


def test_a_diff_of_a_creation_is_all_additions_and_long_runs_are_cut():
    assert {mark for mark, _ in structured.diff_rows(None, {"a": 1, "b": 2})} == {"+"}
    before = {f"k{i:02}": i for i in range(30)}
    rows = structured.diff_rows(before, {**before, "k15": "changed"})
    marks = [mark for mark, _ in rows]
    assert marks.count("…") == 2 and marks.count("-") == 1 and marks.count("+") == 1 and len(rows) < 20


def test_an_inline_value_is_one_escaped_line_of_json():
    assert structured.render_inline({"names": ["<x>"]}) == \
        '<code class="structured-inline">{&quot;names&quot;: [&quot;&lt;x&gt;&quot;]}</code>'


@pytest.mark.django_db
def test_the_job_page_shows_parameters_as_json_and_the_audit_page_a_diff(client, env):
    factories.host(env, "web-1")
    admin = person(env, Role.ADMIN)
    job = launch_adhoc(act(admin, source="web"), environment=env, action="host.command",
                       values={"command": "echo '<hi>'"}, selector={"all": True})
    client.force_login(admin)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    params = re.search(r'<dd id="job-params">(.*?)</dd>', page, re.S).group(1)
    assert json.loads(_code(params)) == job.params and "<hi>" not in params
    template = create_template(act(admin, source="web"), name="tick", environment=env, action="host.command",
                               selector={"all": True}, action_params={"command": "true"})
    update_template(act(admin, source="web"), template, action_params={"command": "false"})
    event = AuditEvent.objects.filter(action="jobtemplate.update").latest("time")
    audit = client.get(f"/audit/{event.pk}/").content.decode()
    diff = re.search(r'<pre class="structured diff".*?</pre>', audit, re.S).group(0)
    row = r'<span class="(d-\w+)"><span class="d-mark"[^>]*>(.)</span>(.*?)</span>(?=<span class="d-|</code>)'
    rows = [(cls, _text(mark + line)) for cls, mark, line in re.findall(row, diff)]
    assert ("d-del", '-  command: "true"') in rows and ("d-add", '+  command: "false"') in rows
    launch = client.get(f"/templates/{template.pk}/launch/").content.decode()
    assert "{&#x27;" not in launch and "{'" not in launch


def test_a_tools_unified_diff_is_classed_line_by_line_and_escaped():
    html = str(structured.render_text_diff("--- a\n+++ b\n@@ -1 +1 @@\n keep\n-<b>old</b>\n+new & better\n"))
    rows = re.findall(r'<span class="(d-[a-z]+)"><span class="d-mark" aria-hidden="true">(.)</span>(.*?)</span>',
                      html)
    assert rows == [("d-skip", " ", "--- a"), ("d-skip", " ", "+++ b"), ("d-skip", " ", "@@ -1 +1 @@"),
                    ("d-same", " ", "keep"), ("d-del", "-", "&lt;b&gt;old&lt;/b&gt;"),
                    ("d-add", "+", "new &amp; better")]
    assert 'aria-label="2 changed lines"' in html and "<b>" not in html
    assert "No difference" in str(structured.render_text_diff(""))
