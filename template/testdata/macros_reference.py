# macros_reference.py writes macros.json: templates with macros rendered by
# jinja2 under transformers' settings (trim_blocks, lstrip_blocks), the
# reference for TestMacrosRenderAsJinja2. Run: python3 macros_reference.py > macros.json
import jinja2, json
env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, loader=jinja2.BaseLoader())
srcs = [
 "{% macro f(x) %}\n  [{{ x }}]\n{% endmacro %}\n{{ f(1) }}{{ f(2) }}",
 "{%- macro f(x) -%}\n  [{{ x }}]\n{%- endmacro -%}\n{{ f(1) }} {{ f(2) }}",
 "{% macro f(x) -%}\n  <{{ x }}>\n  {%- endmacro %}\nA{{ f('a') }}B\n",
 "{% macro g(x) %}{% if x > 0 %}{{ x }},{{ g(x - 1) }}{% endif %}{% endmacro %}{{ g(5) }}",
 "  {% macro h() %}\n    text\n    {% endmacro %}\n{{ h() }}|{{ h() }}",
 "{% macro k(a, b='d') %}{{ a }}{{ b }}{% endmacro %}{{ k('x') }}{{ k('y', 'z') }}{% for m in ['p', 'q'] %}\n{{ k(m) }}\n{% endfor %}",
]
out = [{"src": s, "want": env.from_string(s).render()} for s in srcs]
print(json.dumps(out, indent=1))
