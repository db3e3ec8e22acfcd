#!/usr/bin/env python3
"""Renders the expected outputs of the real chat templates for tests/test_chat_template.cpp.

Every template in ../shared/data/templates (and the chat_template of the Qwen3 tokenizer_config)
is rendered with Python's jinja2 the way Hugging Face transformers renders chat templates:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension and a `generation` tag that renders its body, HF's `tojson` (json.dumps, insertion
order, no HTML escaping), `raise_exception` and a `strftime_now` that reads the fixed time NOW,
and the keyword arguments apply_chat_template passes (messages, tools, documents,
add_generation_prompt, the special tokens, extra template variables).

Each template gets tests/fixtures/chat_templates/<template>.json: its cases, each with the
context rendered and either the expected text, the message the template raised with
raise_exception, or the jinja2 error any other failure gave.

Run from the project root (Debian's python3-jinja2 is what the fixtures were made with):
    /usr/bin/python3 tools/render_template_fixtures.py            # writes the fixtures
    /usr/bin/python3 tools/render_template_fixtures.py --check    # compares with them, writes nothing
"""
import argparse
import datetime
import json
import pathlib
import sys

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "tests" / "fixtures" / "chat_templates"

# strftime_now's clock. The C++ test passes the same instant (as UTC) in RenderOptions::now.
NOW = datetime.datetime(2025, 3, 14, 15, 9, 26)
NOW_UNIX = int(NOW.replace(tzinfo=datetime.timezone.utc).timestamp())


class RaisedByTemplate(TemplateError):
    """What raise_exception() raises, told apart from jinja2's own errors."""


class GenerationTag(Extension):
    """transformers' {% generation %}...{% endgeneration %}: renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return NOW.strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# --- conversations

SYSTEM = "You are a careful assistant. Answer briefly."
Q1 = "What is 2 + 3?"
REASONING = "The user asks for 2 + 3.\nTwo plus three is five."
A1 = "2 + 3 = 5."
A1_THINK = "<think>\n" + REASONING + "\n</think>\n\n" + A1
Q2 = "And 7 * 6? Answer with a number only."
UNICODE = ("Ünïcödé “quotes”, 中文, emoji 🙂, a tab\there, <tag> & 'single' \"double\" \\ backslash,\n"
           "  indented line, trailing spaces   ")


def user(text):
    return {"role": "user", "content": text}


def system(text):
    return {"role": "system", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "description": "Forecast days", "default": 1},
            },
            "required": ["location"],
        },
    },
}
NOTES_TOOL = {
    "type": "function",
    "function": {
        "name": "search_notes",
        "description": "Search the user's notes.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words to look for"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags to match"},
                "limit": {"type": "number", "nullable": True},
                "filters": {
                    "type": "object",
                    "properties": {"after": {"type": "string"}, "pinned": {"type": "boolean"}},
                    "required": ["after"],
                    "description": "Narrowing",
                },
                "mode": {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "Match mode"},
                "extra": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["query"],
        },
        "return": {"type": "array", "description": "Matching note ids"},
    },
}
TOOLS = [WEATHER_TOOL, NOTES_TOOL]
# A parameter with a list of types (what Union[float, None] gives).
UNION_TOOL = {
    "type": "function",
    "function": {
        "name": "set_score",
        "description": "Record a score.",
        "parameters": {"type": "object", "properties": {"score": {"type": ["number", "null"]}}, "required": []},
    },
}
WEATHER_ARGS = {"location": "Paris", "unit": "celsius", "days": 2}
NOTES_ARGS = {"query": "café", "tags": ["work", "2025"], "filters": {"after": "2025-01-01", "pinned": True}}
TOOL_RESULT = "{\"temperature\": 18, \"condition\": \"sunny\"}"


def tool_call(name, arguments, call_id, as_string):
    args = json.dumps(arguments, ensure_ascii=False) if as_string else arguments
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def tool_conversation(style, parallel=False):
    """A tool round trip; `style` says how the template wants tool calls written."""
    calls = [tool_call("get_weather", WEATHER_ARGS, "call12345", style.get("string_args", False))]
    if parallel:
        calls.append(tool_call("search_notes", NOTES_ARGS, "call67890", style.get("string_args", False)))
    call_message = {"role": "assistant", "content": style.get("call_content", ""), "tool_calls": calls}
    messages = [system(SYSTEM), user("What's the weather in Paris, and do my notes mention cafés?"), call_message]
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"],
                         "content": TOOL_RESULT})
    messages.append(assistant("It is 18 °C and sunny in Paris."))
    return messages


CONVERSATIONS = {
    "user": [user(Q1)],
    "system_user": [system(SYSTEM), user(Q1)],
    "multi_turn": [system(SYSTEM), user(Q1), assistant(A1_THINK), user(Q2)],
    "multi_turn_no_system": [user(Q1), assistant(A1_THINK), user(Q2)],
    "assistant_last": [user(Q1), assistant(A1_THINK)],
    "unicode": [system(SYSTEM), user(UNICODE)],
    "reasoning_content": [user(Q1), {"role": "assistant", "content": A1, "reasoning_content": REASONING}, user(Q2)],
    "multimodal": [user([{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]),
                   assistant([{"type": "text", "text": "A cat on a sofa."}]),
                   user([{"type": "text", "text": "And its colour?"}])],
    "roles_not_alternating": [user(Q1), user(Q2)],
}

# Per template: the special tokens its tokenizer has (templates/SOURCES.md), the variables it
# reads, and the conversations beyond the common ones it is checked with.
TEMPLATES = {
    "deepseek-ai-DeepSeek-R1": {
        "tokens": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
        "tools": {"string_args": True, "call_content": None},
    },
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": {
        "tokens": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
        "tools": {"string_args": True, "call_content": None},
    },
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": {
        "tokens": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    },
    "deepseek-ai-DeepSeek-V3.1": {
        "tokens": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
        "switch": ("thinking", [True, False]),
        "tools": {"string_args": True, "call_content": None},
    },
    "Qwen-Qwen3-0.6B": {
        "tokens": {"eos_token": "<|im_end|>"},
        "switch": ("enable_thinking", [True, False]),
        "tools": {}, "parallel_tools": True, "reasoning_content": True,
    },
    "qwen3-tokenizer": {
        "source": "models/qwen3-tokenizer/tokenizer_config.json",
        "tokens": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        "switch": ("enable_thinking", [True, False]),
        "tools": {}, "reasoning_content": True,
    },
    "Qwen-Qwen3-30B-A3B": {
        "tokens": {"eos_token": "<|im_end|>"},
        "switch": ("enable_thinking", [True, False]),
        "tools": {}, "parallel_tools": True, "reasoning_content": True,
    },
    "Qwen-Qwen2.5-7B-Instruct": {"tokens": {"eos_token": "<|im_end|>"}, "tools": {}, "parallel_tools": True},
    "Qwen-Qwen3.5-4B": {
        "tokens": {"eos_token": "<|im_end|>"},
        "switch": ("enable_thinking", [True, False]),
        "tools": {}, "parallel_tools": True, "reasoning_content": True, "multimodal": True,
        "extra": {"vision_ids": ("multimodal", {"add_vision_id": True}, True)},
        "bad": {"system_not_first": [user(Q1), system(SYSTEM)], "no_user_query": [assistant(A1)]},
    },
    "meta-llama-Llama-3.1-8B-Instruct": {
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "tools": {},
        "extra": {
            "tools_in_system": ("tools", {"tools_in_user_message": False, "date_string": "14 Mar 2025"}, True),
            "builtin_tools": ("builtin_call", {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"]}, True),
        },
        "bad": {"two_tool_calls": "parallel_tools"},
    },
    "openai-gpt-oss-120b": {
        "tokens": {"bos_token": "<|startoftext|>", "eos_token": "<|return|>"},
        "switch": ("reasoning_effort", ["low", "high"]),
        "tools": {"thinking": True},
        "extra": {
            "builtin_and_identity": ("system_user", {"builtin_tools": ["browser", "python"],
                                                     "model_identity": "You are a test model."}, True),
            "thinking_field": ("thinking_field", {}, False),
            "union_type": ("user", {"tools": [UNION_TOOL]}, True),
        },
        "bad": {"tool_first": [user(Q1), {"role": "tool", "content": "{}"}],
                "channel_in_content": [user(Q1), assistant("<|channel|>analysis<|message|>hmm"), user(Q2)]},
    },
    "microsoft-Phi-4-mini-instruct": {
        "tokens": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>"},
        "extra": {"system_tools": ("system_tools", {}, True)},
    },
    "microsoft-Phi-4-reasoning-vision-15B": {"tokens": {}},
    "mistralai-Ministral-3-14B-Reasoning-2512": {
        "tokens": {"bos_token": "<s>", "eos_token": "</s>"}, "no_generation_prompt": True,
        "tools": {}, "multimodal": True,
        "extra": {"thinking_chunks": ("thinking_chunks", {}, False)},
        "bad": {"roles_not_alternating": "roles_not_alternating"},
    },
    "mistralai-Mistral-Small-3.2-24B-Instruct-2506": {
        "tokens": {"bos_token": "<s>", "eos_token": "</s>"}, "no_generation_prompt": True,
        "tools": {}, "multimodal": True,
        "bad": {"roles_not_alternating": "roles_not_alternating", "bad_tool_call_id": "short_call_id"},
    },
    "google-gemma-3-4b-it": {
        "tokens": {"bos_token": "<bos>", "eos_token": "<eos>"}, "multimodal": True,
        "bad": {"roles_not_alternating": "roles_not_alternating"},
    },
    "zai-org-GLM-4.5": {
        "tokens": {},
        "switch": ("enable_thinking", [True, False]),
        "tools": {}, "parallel_tools": True, "reasoning_content": True,
    },
    "moonshotai-Kimi-K2-Instruct": {
        "tokens": {"eos_token": "<|im_end|>"}, "tools": {}, "parallel_tools": True, "multimodal": True,
    },
    "moonshotai-Kimi-K2-Thinking": {
        "tokens": {"eos_token": "<|im_end|>"}, "tools": {}, "parallel_tools": True, "reasoning_content": True,
    },
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": {
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
        "always_tools": True, "tools": {}, "parallel_tools": True,
        # With a list of types, json_to_python_type recurses into the letters of "null" until
        # Python's recursion limit: an error case.
        "extra": {"no_tools": ("user", {"tools": None}, True), "union_type": ("user", {"tools": [UNION_TOOL]}, True)},
    },
}


# Conversations that call tools, rendered with the tool definitions.
TOOL_CONVERSATIONS = {"tools", "parallel_tools", "builtin_call", "short_call_id"}


def special_conversation(name, spec):
    """Conversations only some templates are checked with."""
    style = spec.get("tools", {})
    if name == "tools":
        messages = tool_conversation(style)
        if style.get("thinking"):
            messages[2]["thinking"] = "I should look the weather up."
        return messages
    if name == "parallel_tools":
        return tool_conversation(style, parallel=True)
    if name == "builtin_call":
        return [user("Search the web for the weather in Paris."),
                {"role": "assistant", "content": "",
                 "tool_calls": [tool_call("brave_search", {"query": "weather Paris"}, "call12345", False)]},
                {"role": "ipython", "content": "Sunny, 18 °C."}]
    if name == "thinking_field":
        return [user(Q1), {"role": "assistant", "content": A1, "thinking": REASONING}]
    if name == "system_tools":
        return [{"role": "system", "content": SYSTEM, "tools": json.dumps([WEATHER_TOOL])}, user(Q1)]
    if name == "thinking_chunks":
        return [user(Q1), assistant([{"type": "thinking", "thinking": REASONING}, {"type": "text", "text": A1}]),
                user(Q2)]
    if name == "short_call_id":
        messages = tool_conversation(style)
        messages[2]["tool_calls"][0]["id"] = "c1"
        return messages
    return CONVERSATIONS[name]


def cases_for(name, spec):
    """(case name, messages, add_generation_prompt, variables) for one template."""
    agps = [False] if spec.get("no_generation_prompt") else [False, True]
    cases = []
    for conversation in ["user", "system_user", "multi_turn"]:
        for agp in agps:
            cases.append((f"{conversation}{'_gen' if agp else ''}", CONVERSATIONS[conversation], agp, {}))
    cases.append(("multi_turn_no_system_gen", CONVERSATIONS["multi_turn_no_system"], agps[-1], {}))
    cases.append(("assistant_last", CONVERSATIONS["assistant_last"], False, {}))
    cases.append(("unicode_gen", CONVERSATIONS["unicode"], agps[-1], {}))
    if "switch" in spec:
        variable, values = spec["switch"]
        for value in values:
            for conversation in ["user", "multi_turn"]:
                cases.append((f"{conversation}_gen_{variable}_{str(value).lower()}", CONVERSATIONS[conversation],
                              agps[-1], {variable: value}))
    if spec.get("reasoning_content"):
        cases.append(("reasoning_content_gen", CONVERSATIONS["reasoning_content"], agps[-1], {}))
    if "tools" in spec:
        cases.append(("tools", special_conversation("tools", spec), False, {"tools": TOOLS}))
    if spec.get("parallel_tools"):
        cases.append(("parallel_tools_gen", special_conversation("parallel_tools", spec), agps[-1], {"tools": TOOLS}))
    if spec.get("multimodal"):
        cases.append(("multimodal_gen", CONVERSATIONS["multimodal"], agps[-1], {}))
    for case, (conversation, variables, agp) in spec.get("extra", {}).items():
        extra = {"tools": TOOLS} if conversation in TOOL_CONVERSATIONS else {}
        extra.update(variables)
        cases.append((case, special_conversation(conversation, spec), agp and agps[-1], extra))
    for case, conversation in spec.get("bad", {}).items():
        if isinstance(conversation, list):
            cases.append((f"raises_{case}", conversation, agps[-1], {}))
        else:
            extra = {"tools": TOOLS} if conversation in TOOL_CONVERSATIONS else {}
            cases.append((f"raises_{case}", special_conversation(conversation, spec), agps[-1], extra))
    if spec.get("always_tools"):  # the template iterates over tools: give them unless a case says otherwise
        cases = [(n, m, a, {"tools": TOOLS, **v}) for n, m, a, v in cases]
    return cases


def context_for(messages, agp, tokens, variables):
    """The keyword arguments transformers' apply_chat_template passes to render()."""
    context = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": agp}
    context.update(tokens)
    context.update(variables)
    return context


def template_source(name, spec):
    if "source" in spec:
        return json.loads((DATA / spec["source"]).read_text(encoding="utf-8"))["chat_template"], spec["source"]
    relative = f"templates/{name}.jinja"
    return (DATA / relative).read_text(encoding="utf-8"), relative


def render_fixture(env, name, spec):
    source, relative = template_source(name, spec)
    template = env.from_string(source)
    cases = []
    for case, messages, agp, variables in cases_for(name, spec):
        context = context_for(messages, agp, spec["tokens"], variables)
        entry = {"name": case, "context": context}
        try:
            entry["expected"] = template.render(**json.loads(json.dumps(context)))
        except RaisedByTemplate as e:
            entry["raise_exception"] = str(e)
        except Exception as e:  # any other jinja2 failure: the renderer must fail too
            entry["error"] = f"{type(e).__name__}: {e}"
        cases.append(entry)
    return {
        "template": relative,
        "rendered_with": f"jinja2 {jinja2.__version__} (tools/render_template_fixtures.py)",
        "now_unix": NOW_UNIX,
        "cases": cases,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed fixtures; write nothing")
    args = parser.parse_args()
    env = environment()
    OUT.mkdir(parents=True, exist_ok=True)
    differ = 0
    for name, spec in TEMPLATES.items():
        fixture = render_fixture(env, name, spec)
        path = OUT / f"{name}.json"
        if args.check:
            committed = json.loads(path.read_text(encoding="utf-8"))
            if committed["cases"] != fixture["cases"]:
                differ += 1
                print(f"{path.name}: differs from this jinja2 ({jinja2.__version__})", file=sys.stderr)
            continue
        path.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {len(fixture['cases'])} cases")
    if args.check:
        print(f"{len(TEMPLATES) - differ} of {len(TEMPLATES)} fixtures match jinja2 {jinja2.__version__}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
