#!/usr/bin/env python3
"""Reference renderings for the template package's tests, from Python jinja2.

Builds the environment transformers' apply_chat_template uses (as described
in shared/chat-templates/README.md: ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks, loopcontrols, a {% generation %} extension,
json.dumps-based tojson, raise_exception, strftime_now fixed at
2026-01-15 00:00:00) and renders the corpus templates with conversations
the corpus does not have (quotes, backslashes, Jinja syntax and image
placeholders inside text, emoji with joiners, tools, tool calls, thinking,
add_vision_id, tools=None). Writes jinja2-differential.json.gz beside this
file, in the corpus's cases.json format; TestDifferential checks every case.

    python3 jinja2_reference.py /path/to/shared/chat-templates

Needs jinja2 (3.1.6 was used). Also handy for checking a single template:
    python3 -c 'import jinja2_reference as r; print(r.render(SRC, messages=[...]))'
"""
import datetime
import gzip
import itertools
import json
import os
import sys

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        return caller()


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime(2026, 1, 15, 0, 0, 0).strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now


def render(src, **ctx):
    return env.from_string(src).render(**ctx)


FAMILIES = {  # family: (variables, content shapes the template accepts)
    "smolvlm": ({"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"}, "parts"),
    "qwen2-vl": ({"eos_token": "<|im_end|>"}, "both"),
    "gemma-3": ({"bos_token": "<bos>", "eos_token": "<eos>"}, "both"),
    "llava-1-5": ({"bos_token": "<s>", "eos_token": "</s>"}, "parts"),
    "llama-3-2-vision": ({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, "both"),
    "mistral-small-3-1": ({"bos_token": "<s>", "eos_token": "</s>"}, "both"),
    "lfm2-vl": ({"bos_token": "<|startoftext|>"}, "both"),
    "phi-3-vision": ({"bos_token": "<s>", "eos_token": "<|endoftext|>"}, "string"),
}


def T(s):
    return {"type": "text", "text": s}


I = {"type": "image"}
TEXTS = [
    "Don't \"quote\" me",
    "  padded\n",
    "back\\slash {{ x }} {% y %}",
    "emoji \U0001F9D1\U0001F3FD\u200d\U0001F680 \u00df \u01c5",
    "It's <image> [IMG] <|image|>",
    "a\tb\r\nc",
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get it's weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "description": "Citt\u00e0"}, "days": {"type": "integer"}},
    "required": ["city"]}}}]
TOOL_CALLS = [{"id": "call_123456789", "type": "function", "function": {"name": "get_weather", "arguments": {
    "city": "Paris", "days": 3, "opts": {"unit": "\u00b0C", "ok": True, "r": 1.5, "n": None}}}}]


def conversations():
    for t in TEXTS:
        yield "parts", [{"role": "user", "content": [I, T(t)]}]
        yield "parts", [{"role": "system", "content": [T(t)]}, {"role": "user", "content": [T(t), I]},
                        {"role": "assistant", "content": [T(t)]}, {"role": "user", "content": [I, I, T("more")]}]
        yield "string", [{"role": "system", "content": t}, {"role": "user", "content": t},
                         {"role": "assistant", "content": t}, {"role": "user", "content": "ok"}]
    for t in TEXTS[:3]:
        yield "string", [{"role": "user", "content": t}, {"role": "assistant", "content": "", "tool_calls": TOOL_CALLS},
                         {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "call_123456789"},
                         {"role": "assistant", "content": "<think>hmm</think>It is 21.", "thinking": "hmm"},
                         {"role": "user", "content": "thanks"}]
        yield "parts", [{"role": "user", "content": [T(t)]}, {"role": "assistant", "content": [T("x")], "thinking": "deep"},
                        {"role": "user", "content": [I]}]


EXTRA_VARIABLES = [{}, {"keep_past_thinking": True}, {"tools": TOOLS}, {"add_vision_id": True}, {"tools": None, "documents": None}]


def main(corpus):
    cases = []
    convs = list(conversations())
    for family, (variables, shapes) in FAMILIES.items():
        with open(os.path.join(corpus, "templates", family + ".jinja"), encoding="utf-8", newline="") as f:
            template = env.from_string(f.read())
        for (shape, messages), extra, agp in itertools.product(convs, EXTRA_VARIABLES, [True, False]):
            if shapes != "both" and shape != shapes:
                continue
            v = dict(variables, **extra)
            case = {"family": family, "template_file": "templates/%s.jinja" % family,
                    "conversation_id": "jinja2-%d" % len(cases), "content_shape": shape,
                    "add_generation_prompt": agp, "variables": v, "messages": messages}
            try:
                case["expected"] = template.render(messages=messages, add_generation_prompt=agp, **v)
            except TemplateError as e:
                case["expected_error"] = str(e)
            except Exception:
                continue  # a Python error other than raise_exception: not a case
            cases.append(case)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja2-differential.json.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(json.dumps(cases, ensure_ascii=False, sort_keys=False).encode("utf-8"))
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../../../shared/chat-templates")
