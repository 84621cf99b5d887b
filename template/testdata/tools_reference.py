#!/usr/bin/env python3
"""Reference renderings of tool conversations, from Python jinja2.

Renders the chat templates of the vision families whose templates take
tools (Llama 3.2 Vision, Mistral Small 3.1 and LFM2-VL from the corpus;
Llama 4, Mistral Small 3.2, Qwen3.5 and Gemma 4 from tool-templates/, see
tool-templates/README.md) with tool conversations: a tools list, a picture
in the same conversation, assistant tool_calls with arguments as objects
and as JSON strings, tool results, parallel calls. The environment is
jinja2_reference.py's (transformers' apply_chat_template settings,
strftime_now fixed at 2026-01-15). Writes jinja2-tools.json.gz beside this
file, in the corpus's cases.json format with template_file relative to this
folder; TestToolTemplates checks every case byte for byte.

    python3 tools_reference.py
"""
import copy
import gzip
import itertools
import json
import os

from jinja2.exceptions import TemplateError

from jinja2_reference import env

HERE = os.path.dirname(os.path.abspath(__file__))

FAMILIES = {  # family: (template file relative to HERE, variables)
    "llama-3-2-vision": ("chat-templates/templates/llama-3-2-vision.jinja",
                         {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "mistral-small-3-1": ("chat-templates/templates/mistral-small-3-1.jinja", {"bos_token": "<s>", "eos_token": "</s>"}),
    "lfm2-vl": ("chat-templates/templates/lfm2-vl.jinja", {"bos_token": "<|startoftext|>"}),
    "llama-4": ("tool-templates/llama-4.jinja", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot|>"}),
    "mistral-small-3-2": ("tool-templates/mistral-small-3-2.jinja", {"bos_token": "<s>", "eos_token": "</s>"}),
    "qwen3-5": ("tool-templates/qwen3-5.jinja", {"eos_token": "<|im_end|>"}),
    "gemma-4": ("tool-templates/gemma-4.jinja", {"bos_token": "<bos>", "eos_token": "<eos>"}),
}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "description": "How many days"}},
        "required": ["city"]}}}
DESCRIBE = {"type": "function", "function": {
    "name": "tag_image", "description": "Record tags for the picture",
    "parameters": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "confident": {"type": "boolean"}},
        "required": ["tags"]}}}
TOOLS = [WEATHER, DESCRIBE]


def T(s):
    return {"type": "text", "text": s}


I = {"type": "image"}


def call(cid, name, args, as_string):
    return {"id": cid, "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args}}


def conversations():
    """(id, shape, messages) for each tool conversation."""
    for as_string in (False, True):
        kind = "string_args" if as_string else "object_args"
        c1 = call("abcDEF123", "get_weather", {"city": "Paris", "unit": "celsius"}, as_string)
        c2 = call("xyz789ghi", "get_weather", {"city": "Z\u00fcrich", "days": 2}, as_string)
        c3 = call("tag000001", "tag_image", {"tags": ["cat", "sofa"], "confident": True}, as_string)
        # A picture and a question: the prompt that asks for a call.
        yield "image_question", "parts", [
            {"role": "user", "content": [I, T("Where is this? What is the weather there?")]}]
        yield "system_image_question", "string", [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the weather in Paris?"}]
        # One call, its result, the answer, a follow-up with a picture.
        yield "one_call_" + kind, "string", [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [c1]},
            {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}", "tool_call_id": "abcDEF123", "name": "get_weather"},
            {"role": "assistant", "content": "It is 21 \u00b0C and clear in Paris."},
            {"role": "user", "content": "Thanks!"}]
        yield "one_call_image_" + kind, "parts", [
            {"role": "user", "content": [I, T("Tag this picture, then tell me the weather in Paris.")]},
            {"role": "assistant", "content": [], "tool_calls": [c3]},
            {"role": "tool", "content": "ok", "tool_call_id": "tag000001", "name": "tag_image"}]
        # Parallel calls and their results.
        yield "parallel_" + kind, "string", [
            {"role": "user", "content": "Weather in Paris and Z\u00fcrich?"},
            {"role": "assistant", "content": "", "tool_calls": [c1, c2]},
            {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "abcDEF123", "name": "get_weather"},
            {"role": "tool", "content": "{\"temp\": 12}", "tool_call_id": "xyz789ghi", "name": "get_weather"}]
        yield "parallel_image_" + kind, "parts", [
            {"role": "user", "content": [T("Tag it and get both weathers."), I]},
            {"role": "assistant", "content": [T("Calling tools.")], "tool_calls": [c3, c2]},
            {"role": "tool", "content": [T("stored")], "tool_call_id": "tag000001", "name": "tag_image"},
            {"role": "tool", "content": [T("{\"temp\": 12}")], "tool_call_id": "xyz789ghi", "name": "get_weather"},
            {"role": "user", "content": [T("And this one?"), I]}]


def main():
    cases = []
    for family, (path, variables) in FAMILIES.items():
        with open(os.path.join(HERE, path), encoding="utf-8", newline="") as f:
            template = env.from_string(f.read())
        for (cid, shape, messages), tools, agp in itertools.product(conversations(), [TOOLS, [WEATHER], None], [True, False]):
            v = dict(variables)
            if tools is not None:
                v["tools"] = tools
            case = {"family": family, "template_file": path,
                    "conversation_id": "%s+%s" % (cid, "tools%d" % len(tools) if tools else "no_tools"),
                    "content_shape": shape, "add_generation_prompt": agp, "variables": v,
                    "messages": copy.deepcopy(messages)}
            try:
                case["expected"] = template.render(messages=messages, add_generation_prompt=agp, **v)
            except TemplateError as e:
                if type(e) is not TemplateError:  # e.g. UndefinedError: not raise_exception, not a case
                    print("skipped %s %s: %s: %s" % (family, case["conversation_id"], type(e).__name__, e))
                    continue
                case["expected_error"] = str(e)
            except Exception as e:  # a Python error other than raise_exception: not a case
                print("skipped %s %s: %s: %s" % (family, case["conversation_id"], type(e).__name__, e))
                continue
            cases.append(case)
    out = os.path.join(HERE, "jinja2-tools.json.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(json.dumps(cases, ensure_ascii=False, sort_keys=False).encode("utf-8"))
    errors = sum(1 for c in cases if "expected_error" in c)
    print("wrote %d cases (%d expected errors) to %s" % (len(cases), errors, out))


if __name__ == "__main__":
    main()
