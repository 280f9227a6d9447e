"""The server's native chat templates against the real Jinja templates rendered by jinja2 the way
transformers' apply_chat_template renders them (sandboxed, trim_blocks, lstrip_blocks,
raise_exception): every template on a set of conversations must give the same text, and the
same refusal where the template raises. Runs ropedist-chat-template (the server's code).
Skips visibly without jinja2."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import serve_lib as sl

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    sl.skip("jinja2 is not installed (pip install -r tests/serve/requirements.txt)")

# tokenizer_config.json chat templates as the model repositories publish them
TEMPLATES = {
    "llama3 (Meta-Llama-3-8B-Instruct)": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
        " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
        "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
        "<|end_header_id|>\n\n' }}{% endif %}",
        "<|begin_of_text|>", "<|end_of_text|>", "llama3"),
    "llama2 (Llama-2-7b-chat-hf)": (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
        "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
        "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
        "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
        "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
        "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
        "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
        "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
        "{% endfor %}",
        "<s>", "</s>", "llama2"),
    "chatml (Qwen2-7B-Instruct)": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
        "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' "
        "+ message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
        "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        None, "<|im_end|>", "chatml"),
    "chatml (plain)": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
        "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
        "}}{% endif %}",
        "<s>", "<|im_end|>", "chatml"),
    "mistral (Mistral-7B-Instruct-v0.1)": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
        "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
        "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
        "message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant "
        "roles are supported!') }}{% endif %}{% endfor %}",
        "<s>", "</s>", "mistral"),
    "mistral (Mistral-7B-Instruct-v0.2)": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
        "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
        "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
        "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
        "are supported!') }}{% endif %}{% endfor %}",
        "<s>", "</s>", "mistral"),
}

S, U, A = "system", "user", "assistant"
CONVERSATIONS = [
    [(U, "Hello!")],
    [(S, "You are terse."), (U, "What is the capital of France?")],
    [(U, "  padded  \n"), (A, "\tsure thing \n"), (U, "and again")],
    [(S, ""), (U, "empty system"), (A, "ok"), (U, "bye")],
    [(U, "unicode: Émile — 東京\u00a0"), (A, "\u3000spaces\u2003"), (U, "line\nbreaks\n\n")],
    [(S, "sys"), (U, "one"), (A, "two"), (U, "three"), (A, "four")],
    [(A, "assistant first")],
    [(U, "a"), (U, "b")],
    [(S, "s1"), (S, "s2"), (U, "u")],
]


def jinja_render(template, bos, eos, messages, agp):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    try:
        return True, env.from_string(template).render(messages=messages, bos_token=bos or "",
                                                      eos_token=eos, add_generation_prompt=agp)
    except jinja2.exceptions.TemplateError as e:
        return False, str(e)


def ours(config_path, messages, agp):
    out = subprocess.run([os.path.join(sl.BIN, "ropedist-chat-template"), config_path],
                         input=json.dumps({"messages": messages, "add_generation_prompt": agp}),
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout, out.stderr


tmp = tempfile.mkdtemp(prefix="rd_chat_tpl_")
n = 0
for name, (template, bos, eos, style) in TEMPLATES.items():
    path = os.path.join(tmp, "tokenizer_config.json")
    cfg = {"chat_template": template, "eos_token": {"content": eos}}
    if bos is not None:
        cfg["bos_token"] = bos
    json.dump(cfg, open(path, "w"))
    for conv in CONVERSATIONS:
        msgs = [{"role": r, "content": c} for r, c in conv]
        for agp in (True, False):
            ok, want = jinja_render(template, bos, eos, msgs, agp)
            rc, got, err = ours(path, msgs, agp)
            n += 1
            if ok:
                sl.check(rc == 0 and got == want, "%s, %s, agp=%s:\n  jinja2: %r\n  ours:   %r %s"
                         % (name, conv, agp, want, got, err.strip()))
            else:
                sl.check(rc == 2 and want in err, "%s, %s: jinja2 raises %r, ours: rc %d %r"
                         % (name, conv, want, rc, err.strip()))
    print("%-36s %-8s same as jinja2 on %d conversations" % (name, style, len(CONVERSATIONS) * 2))

# a template none of the renderers knows: refused, with the reason
json.dump({"chat_template": "{% for m in messages %}<<{{ m.role }}>>{{ m.content }}{% endfor %}"},
          open(os.path.join(tmp, "tokenizer_config.json"), "w"))
rc, got, err = ours(os.path.join(tmp, "tokenizer_config.json"), [{"role": "user", "content": "x"}], True)
sl.check(rc == 2 and "not one of" in err, "an unknown template is refused with a reason: rc %d %r" % (rc, err))
print("%d renderings compared" % n)
sl.finish("chat templates")
