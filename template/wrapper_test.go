package template

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedClock is the corpus's strftime_now date: 2026-01-15 00:00:00.
func fixedClock() time.Time { return corpusDate }

// The expected strings below were produced by Python's jinja2 3.1.6 set up
// as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, loopcontrols, a generation extension, its
// tojson, raise_exception, strftime_now at 2026-01-15 00:00:00), with the
// same messages and variables given as Python dicts in the same key order
// (testdata/jinja2_reference.py builds that environment).
func TestWrapperMatchesJinja2(t *testing.T) {
	userImageHi := []Message{User(Image(), Text("hi"))}
	userAssistant := []Message{UserText("q"), AssistantText("a")}
	tests := []struct {
		name    string
		source  string
		msgs    []Message
		vars    map[string]any
		want    string
		wantErr string // a raise_exception message
	}{
		// String literals decode as Python's unicode_escape.
		{name: "backslash newline is a line continuation", source: "{{ \"one\\\ntwo\" }}|{{ 'a\\\n\\\nb' }}", want: "onetwo|ab"},
		{name: "unknown escapes are kept", source: `{{ "\s+\d" }}`, want: `\s+\d`},
		{name: "python escapes", source: `{{ "\x41\u00e9\U0001F600\101\r\t\n\a\0" | tojson }}`, want: `"Aé😀A\r\t\n\u0007\u0000"`},
		{name: "backslash before non-ASCII", source: `{{ "\é" }}`, want: `\xe9`},
		{name: "escaped quotes and backslashes", source: `{{ "a\"b" }}{{ 'c\'d' }}{{ "\x22\x27\x5c" }}`, want: `a"bc'd"'\`},
		// Source newlines, as jinja2's lexer reads them.
		{name: "one trailing newline is dropped", source: "Hello {{ name }}\n", vars: map[string]any{"name": "X"}, want: "Hello X"},
		{name: "only one trailing newline is dropped", source: "Hello\n\n", want: "Hello\n"},
		{name: "CRLF and CR become LF", source: "a\r\n{% if true %}\r\nb{% endif %}\r\nc\rd", want: "a\nbc\nd"},
		{name: "tojson rename leaves literals alone", source: `{{ "x|tojson" }}{{ [1] | tojson }}{{ [2]|tojson() }}`, want: "x|tojson[1][2]"},
		// Messages are ordered dicts, as Python's.
		{name: "message dict keeps insertion order", source: "{{ messages[0] }}", msgs: userImageHi,
			want: "{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'hi'}]}"},
		{name: "items keep insertion order", source: "{% for k, v in messages[0].items() %}{{ k }};{% endfor %}{% for p in messages[0].content %}{% for k in p %}{{ k }},{% endfor %}{% endfor %}",
			msgs: userImageHi, want: "role;content;type,type,text,"},
		// tojson as transformers defines it: json.dumps, ensure_ascii=False.
		{name: "tojson keeps non-ASCII and does not HTML-escape", source: "{{ messages | tojson }}",
			msgs: []Message{User(Image(), Text("héllo \"q\" <b> & é\u2028"))},
			want: `[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "héllo \"q\" <b> & é` + "\u2028" + `"}]}]`},
		{name: "tojson indent keeps key order", source: "{{ tools[0] | tojson(indent=4) }}",
			vars: map[string]any{"tools": json.RawMessage(`[{"type":"function","function":{"name":"get_weather","parameters":{"b":1,"a":[1.0,2,null,true],"e":{},"f":[]}}}]`)},
			want: "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"parameters\": {\n            \"b\": 1,\n            \"a\": [\n                1.0,\n                2,\n                null,\n                true\n            ],\n            \"e\": {},\n            \"f\": []\n        }\n    }\n}"},
		{name: "tojson ensure_ascii separators sort_keys", source: `{{ tools[0] | tojson(ensure_ascii=True, separators=(",", ":"), sort_keys=True) }}`,
			vars: map[string]any{"tools": []any{Map{{"z", "é😀\x7f"}, {"a", 0.5}}}},
			want: `{"a":0.5,"z":"\u00e9\ud83d\ude00\u007f"}`},
		{name: "tojson floats as Python", source: "{{ [1.0, 0.1, 1e-5, 1e16, 2.5e-7, 1e15, -0.0, 123456789.0] | tojson }}",
			want: "[1.0, 0.1, 1e-05, 1e+16, 2.5e-07, 1000000000000000.0, -0.0, 123456789.0]"},
		// raise_exception, also from inside a macro.
		{name: "raise_exception in a macro", source: `{% macro check(m) %}{% if m.role != "user" %}{{ raise_exception("Role " + m.role + " is not allowed: 'x' \"y\"") }}{% endif %}ok{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}`,
			msgs: []Message{UserText("a"), {Role: "tool", Text: "b"}}, wantErr: `Role tool is not allowed: 'x' "y"`},
		// strftime_now with the fixed clock and Python (glibc) formats.
		{name: "strftime_now", source: `{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%Y-%m-%d") }}|{{ strftime_now("%A %B %-d, %I:%M %p %j %U %W %V %u %w %y %C %e %c %x %X %%") }}|{{ strftime_now("%z%Z%q") }}`,
			want: "15 Jan 2026|2026-01-15|Thursday January 15, 12:00 AM 015 02 02 03 4 4 26 20 15 Thu Jan 15 00:00:00 2026 01/15/26 00:00:00 %|%q"},
		// {% generation %} renders its body.
		{name: "generation block", source: "{% for m in messages %}{% if m.role == \"assistant\" %}{% generation %}[{{ m.content }}]{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}",
			msgs: userAssistant, want: "q[a]"},
		{name: "generation block with whitespace control", source: "{%- for m in messages -%}\n    {%- generation -%}\n        {{ m.content }}\n    {%- endgeneration -%}\n{%- endfor -%}",
			msgs: userAssistant, want: "qa"},
		{name: "loop controls", source: "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", want: "0134"},
		{name: "range", source: "{{ range(5) | list }}{{ range(1,10,3)|list }}{{ range(5,0,-2)|list }}{{ range(-3) | list }}{{ range(100000) | length }}",
			want: "[0, 1, 2, 3, 4][1, 4, 7][5, 3, 1][]100000"},
		{name: "trim_blocks and lstrip_blocks", source: "  {% if true %}\n  x\n  {% endif %}\ny {# c #}\n  {% if true %}z{% endif %}", want: "  x\ny z"},
		// Content as a string or as parts.
		{name: "string content vs parts", source: "{% for m in messages %}{{ m.role }}={{ m.content is string }}/{{ m.content is iterable }};{% endfor %}",
			msgs: []Message{SystemText("s"), User(Text("t"))}, want: "system=True/True;user=False/True;"},
		{name: "bos_token undefined when not given", source: "[{{ bos_token }}]{{ bos_token is defined }}", want: "[]False"},
		{name: "tools given as None", source: "{{ tools is defined }},{{ tools is none }}", vars: map[string]any{"tools": nil}, want: "True,True"},
		// Printing is Python's str(), not the engine's.
		{name: "print like Python str", source: `{{ none }}|{{ 1.0 }}|{{ 100000.0 }}|{{ [1.0, none, "it's", {"a": 'x"y'}, true] }}|{{ x }}|{{ 1e20 }}`,
			vars: map[string]any{"x": nil}, want: `None|1.0|100000.0|[1.0, None, "it's", {'a': 'x"y'}, True]|None|1e+20`},
		{name: "repr escapes what Python cannot print", source: "{{ [\"a\\u200d\\xa0\\u2028\\U000e0001\\ue000 é\\x85\\x00\"] }}",
			want: `['a\u200d\xa0\u2028\U000e0001\ue000 é\x85\x00']`},
		{name: "print dicts and lists from variables", source: "{{ x }}|{{ x.a }}|{{ y }}",
			vars: map[string]any{"x": Map{{"a", nil}}, "y": []any{nil, 0.5, -1e-7}}, want: "{'a': None}|None|[None, 0.5, -1e-07]"},
		{name: "trim and string of parts", source: `{{ messages[0].content | trim }}|{{ messages[0].content | string }}|{{ none | string }}|{{ 2.0 | string }}|[{{ "  a\x1c\x85" | trim }}]|{{ "xxaxx" | trim("x") }}`,
			msgs: []Message{System(Text("Don't"))},
			want: `[{'type': 'text', 'text': "Don't"}]|[{'type': 'text', 'text': "Don't"}]|None|2.0|[a]|a`},
		{name: "whitespace control around outputs", source: `{{- "a" -}}  {{ "b" }}  {{- 3 }}{{ - 1 }}`, want: "ab3-1"},
		// The lexer balances brackets; dict() keeps keyword order.
		{name: "nested dict literals", source: `{{ {"a": {"b": 1}} }}|{% set x = {"a": {"b": [1, {"c": 2}]}}%}{{ x | tojson }}`,
			want: `{'a': {'b': 1}}|{"a": {"b": [1, {"c": 2}]}}`},
		{name: "dict() keeps keyword order", source: `{{ dict(b=1, a=dict(z=1, y="}}"), c=[1,2]) | tojson }}|{{ dict() }}|{{ dict(x=1,) }}|{{ {"k": dict(q=(1 + 2))} }}`,
			want: `{"b": 1, "a": {"z": 1, "y": "}}"}, "c": [1, 2]}|{}|{'x': 1}|{'k': {'q': 3}}`},
		{name: "dict() items in order", source: "{% set d = dict(b=2, a=1) %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", want: "b=2;a=1;"},
		{name: "selectattr and rejectattr with one argument", source: `{{ [{"a": 1}, {"b": 2}, {"a": 0}]|selectattr("a")|list }}|{{ [{"a": 1}, {"b": 2}]|rejectattr('a')|list }}|{{ messages|selectattr("role", "equalto", "user")|list|length }}`,
			msgs: userAssistant, want: "[{'a': 1}]|[{'b': 2}]|1"},
		{name: "set in a loop does not leak", source: "{% set x = 0 %}{% for i in [1,2] %}{% set x = i %}{% endfor %}{{ x }}", want: "0"},
		{name: "namespace counts images across messages", source: `{% set ns = namespace(n=0) %}{% for m in messages %}{% for p in m.content %}{% if p.type == "image" %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{% endfor %}{{ ns.n }}`,
			msgs: []Message{User(Image(), Image(), Text("x")), Assistant(Text("y")), User(Image())}, want: "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Compile(tc.source)
			require.NoError(t, err)
			got, err := tmpl.Render(tc.msgs, Options{Vars: tc.vars, Now: fixedClock})
			if tc.wantErr != "" {
				var raise *RaiseError
				require.ErrorAs(t, err, &raise)
				assert.Equal(t, tc.wantErr, err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
