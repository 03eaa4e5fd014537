"""Configuration templates cannot make the portal spend unbounded memory or CPU: the sandbox refuses
huge values and counts operations, and every render runs in a child process with resource limits."""
import resource
import time

import pytest

from ops_portal.configs import rendering, sandbox


def refused(source, variables=None):
    started = time.monotonic()
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render(source, variables or {}, name="app")
    return str(caught.value), time.monotonic() - started


@pytest.mark.parametrize("source", [
    "{{ '%0100000000d' % 1 }}", "{{ '%.100000000f' % 1 }}", "{{ '%*d' % (100000000, 1) }}",
    "{{ '%(a)0100000000d' % {'a': 1} }}", "{{ '{:0100000000d}'.format(1) }}", "{{ '{:{w}}'.format(1, w=10**8) }}",
    "{{ '{0:>100000000}'.format_map({}) }}", "{{ '%0100000000d'|format(1) }}", "{{ 'x'|center(100000000) }}",
    "{{ 'x'.ljust(100000000) }}", "{{ 'x' * 100000000 }}", "{{ ['x'] * 100000000 }}", "{{ 9 ** 99999 }}",
    "{{ lipsum(100000000) }}", "{{ range(100000000)|list|length }}",
    "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(s=['x'] * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
])
def test_huge_values_are_refused_before_they_are_built(source):
    message, seconds = refused(source)
    assert "sandbox" in message or "limit" in message or "not allowed" in message, message
    assert seconds < 5


def test_a_hundred_million_loop_iterations_end_at_the_operation_budget():
    message, seconds = refused("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
    assert f"more than {sandbox.MAX_OPERATIONS:,} operations" in message
    assert seconds < rendering.RENDER_TIMEOUT


def test_recursive_macros_count_as_operations():
    message, _ = refused("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    assert "operations" in message or "RecursionError" in message


def test_memory_the_sandbox_cannot_foresee_is_bounded_by_the_child_process():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message, seconds = refused("{{ ('x\\n' * 500000)|indent(2000) }}")  # 1 GB of spaces
    assert f"{rendering.RENDER_MEMORY // 2**20} MiB" in message, message
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert growth_mib < 50 and seconds < rendering.RENDER_TIMEOUT


def test_cpu_the_sandbox_does_not_count_is_bounded_by_the_parents_timeout(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 300)  # only the kill can stop it now
    monkeypatch.setattr(rendering, "RENDER_TIMEOUT", 1.5)
    message, seconds = refused("{% for i in range(200) %}{{ ('x' * 1000000)|list|sort|length }}{% endfor %}")
    assert "took longer than 1.5 s" in message
    assert seconds < 5


def test_one_runaway_template_fails_alone_and_the_rest_still_render():
    bomb = "{{ ('x\\n' * 500000)|indent(2000) }}"
    results = rendering.render_many([("a={{ a }}\n", {"a": 1}, "one"), (bomb, {}, "two"), ("{{ nope }}", {}, "three"),
                                     ("b={{ b }}\n", {"b": 2}, "four"), ("{% for %}", {}, "five")])
    assert results[0] == b"a=1\n" and results[3] == b"b=2\n"
    assert [type(r).__name__ for r in results] == ["bytes", "RenderError", "RenderError", "bytes", "RenderError"]
    assert "'nope' is undefined" in str(results[2]) and "syntax error" in str(results[4])


def test_ordinary_templates_render_as_before():
    source = ("{% for port in ports %}listen {{ '%5d' % port }} {{ '{:>6}'.format(name) }}\n{% endfor %}"
              "{{ range(3)|map('string')|join(',') }} {{ 'ab' ~ 'cd' }} {{ [1] + [2] }} {{ items|sort|first }}\n")
    assert rendering.render(source, {"ports": [80, 443], "name": "web", "items": ["b", "a"]}) == (
        b"listen    80    web\nlisten   443    web\n0,1,2 abcd [1, 2] a\n")
