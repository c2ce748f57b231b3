"""Hostile prompt templates, each meant to hang, blow up memory or escape the sandbox: shared by the template-limit
tests and the bad-input catalogue."""

HOSTILE = {
    "nested loops": "{% for x in range(99999) %}{% for y in range(99999) %}a{% endfor %}{% endfor %}",
    "silent nested loops": "{% for x in range(99999) %}{% for y in range(99999) %}{% endfor %}{% endfor %}",
    "string repetition": "{{ 'A' * 10000000 }}",
    "list repetition": "{{ [1] * 10000000 }}",
    "huge range": "{{ range(10**9)|list|length }}",
    "doubling by ~": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling by +": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "exponential macro": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% else %}x{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "unbounded recursion": "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}",
    "huge filter width": "{{ 'x'|center(10**9) }}",
    "huge method width": "{{ 'x'.center(10**9) }}",
    "huge printf width": "{{ '%999999999s' % 'x' }}",
    "huge power": "{{ 9 ** 99999999 }}",
    "long output": "{{ ('x' * 100000) ~ ('x' * 100000) ~ ('x' * 100000) }}",
}
