"""`ropedist serve` at np 1 on the embedded default model, with real clients: the official
`openai` package (completions and chat, whole and streamed) and curl; greedy output equal to
`ropedist --prompt ... --temperature 0`; logprobs; stop strings; the API key; the bad-input cases
(malformed JSON, wrong types, max_tokens <= 0, a prompt longer than the context, n > 1, an
unknown route, a body over --max-body-kb, chat without a template); unknown fields ignored; a
client that disconnects mid-stream frees its sequence; /metrics, /health, /v1/models."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import serve_lib as sl

try:
    import openai
except ImportError:
    sl.skip("the openai package is not installed (pip install -r tests/serve/requirements.txt)")
if not shutil.which("curl"):
    sl.skip("curl is not installed")
if not sl.MPIRUN:
    sl.skip("no mpirun")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
          "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
chat_cfg = sl.chat_model_dir(CHATML)
srv = sl.Server(np=1, config=chat_cfg, args=["--max-body-kb", "64"])
client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused")
name = "rd_chat_" + chat_cfg.split("rd_chat_")[1].split("/")[0]
models = client.models.list()
sl.check([m.id for m in models.data] == [name], "/v1/models lists %s: %s" % (name, models))

# greedy completions equal the command line's output, whole and streamed
prompts = ["It is a truth universally acknowledged", "Emma", "Mr. Darcy said"]
for p in prompts:
    cli = subprocess.run([os.path.join(sl.BIN, "ropedist"), "--device", "cpu", "--config", sl.CONFIG,
                          "--prompt", p, "--max-new-tokens", "24", "--temperature", "0", "--output",
                          "json"], capture_output=True, text=True, env=sl.mpi_env(), timeout=120)
    want = json.loads(cli.stdout)
    r = client.completions.create(model=name, prompt=p, max_tokens=24, temperature=0)
    sl.check(r.choices[0].text == want["text"], "greedy %r: server %r, CLI %r" % (p, r.choices[0].text, want["text"]))
    sl.check(r.usage.prompt_tokens == len(want["prompt_ids"]) and r.usage.completion_tokens == len(want["output_ids"]),
             "usage of %r: %s" % (p, r.usage))
    sl.check(r.choices[0].finish_reason == ("stop" if want["finish_reason"] == "eos" else "length"),
             "finish_reason %s vs %s" % (r.choices[0].finish_reason, want["finish_reason"]))
    chunks = list(client.completions.create(model=name, prompt=p, max_tokens=24, temperature=0, stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    sl.check(text == want["text"], "streamed greedy %r: %r vs %r" % (p, text, want["text"]))
    sl.check(chunks[-1].choices[0].finish_reason is not None, "the last chunk has a finish_reason")
print("greedy completions (whole, streamed) equal ropedist --prompt on %d prompts" % len(prompts))

# a NUL character inside a prompt is kept, as in a --prompts JSONL line; a chat message with one
# is refused by name (the template cannot render it)
nul_prompt = "Once\u0000upon a time"
jl = os.path.join(os.path.dirname(chat_cfg), "nul.jsonl")
with open(jl, "w") as f:
    f.write(json.dumps({"prompt": nul_prompt}) + "\n")
cli = subprocess.run([os.path.join(sl.BIN, "ropedist"), "--device", "cpu", "--config", sl.CONFIG,
                      "--prompts", jl, "--max-new-tokens", "8", "--temperature", "0", "--output", "json"],
                     capture_output=True, text=True, env=sl.mpi_env(), timeout=120)
want = json.loads(cli.stdout.splitlines()[0])
r = client.completions.create(model=name, prompt=nul_prompt, max_tokens=8, temperature=0)
sl.check(r.usage.prompt_tokens == len(want["prompt_ids"]) and r.choices[0].text == want["text"],
         "a prompt with a NUL: server %d tokens %r, offline %d tokens %r" %
         (r.usage.prompt_tokens, r.choices[0].text, len(want["prompt_ids"]), want["text"]))
short = client.completions.create(model=name, prompt="Once", max_tokens=1, temperature=0)
sl.check(r.usage.prompt_tokens > short.usage.prompt_tokens, "the text after the NUL is not cut off")
try:
    client.chat.completions.create(model=name, messages=[{"role": "user", "content": "a\u0000b"}], max_tokens=2)
    sl.check(False, "a chat message with a NUL must be refused")
except openai.BadRequestError as e:
    sl.check("NUL" in str(e), "the refusal names the NUL: %s" % e)
print("a NUL inside a prompt is kept; in a chat message it is refused by name")

# token-id prompts, logprobs, usage in a stream
ids = sl.encode("She was the youngest of the two daughters")
r = client.completions.create(model=name, prompt=ids, max_tokens=8, temperature=0, logprobs=3)
lp = r.choices[0].logprobs
sl.check(len(lp.tokens) == 8 and len(lp.top_logprobs[0]) == 3 and all(v <= 0 for v in lp.token_logprobs),
         "logprobs: %s" % lp)
sl.check(abs(max(lp.top_logprobs[0].values()) - lp.token_logprobs[0]) < 1e-5,
         "greedy picks the most likely token: %s" % lp.top_logprobs[0])
chunks = list(client.completions.create(model=name, prompt=ids, max_tokens=5, temperature=0, stream=True,
                                        stream_options={"include_usage": True}))
sl.check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5, "stream usage: %s" % chunks[-1])

# sampling with a seed is reproducible; a stop string ends the text before it
a = client.completions.create(model=name, prompt="Emma", max_tokens=16, temperature=0.8, top_p=0.9, seed=7)
b = client.completions.create(model=name, prompt="Emma", max_tokens=16, temperature=0.8, top_p=0.9, seed=7)
sl.check(a.choices[0].text == b.choices[0].text, "same seed, same text: %r %r" % (a.choices[0].text, b.choices[0].text))
full = client.completions.create(model=name, prompt=prompts[0], max_tokens=24, temperature=0).choices[0].text
stop = full.split()[3]
r = client.completions.create(model=name, prompt=prompts[0], max_tokens=24, temperature=0, stop=[stop])
sl.check(r.choices[0].text == full[:full.index(stop)] and r.choices[0].finish_reason == "stop",
         "stop %r: %r (full %r)" % (stop, r.choices[0].text, full))
chunks = list(client.completions.create(model=name, prompt=prompts[0], max_tokens=24, temperature=0, stop=stop, stream=True))
sl.check("".join(c.choices[0].text for c in chunks if c.choices) == full[:full.index(stop)], "streamed stop")

# chat: the template renders, the prompt is what the command line would tokenize
msgs = [{"role": "system", "content": "You write like Jane Austen."}, {"role": "user", "content": "Describe Emma."}]
r = client.chat.completions.create(model=name, messages=msgs, max_tokens=20, temperature=0)
rendered = subprocess.run([os.path.join(sl.BIN, "ropedist-chat-template"),
                           os.path.join(os.path.dirname(chat_cfg), "tokenizer_config.json")],
                          input=json.dumps({"messages": msgs}), capture_output=True, text=True).stdout
chat_ids = sl.encode(rendered, special=False)
cli = subprocess.run([os.path.join(sl.BIN, "ropedist"), "--device", "cpu", "--config", sl.CONFIG, "--prompt-ids",
                      ",".join(map(str, chat_ids)), "--max-new-tokens", "20", "--temperature", "0", "--output",
                      "json"], capture_output=True, text=True, env=sl.mpi_env(), timeout=120)
sl.check(r.choices[0].message.content == json.loads(cli.stdout)["text"] and r.choices[0].message.role == "assistant",
         "chat greedy: %r vs %r" % (r.choices[0].message.content, json.loads(cli.stdout)["text"]))
sl.check(r.usage.prompt_tokens == len(chat_ids), "chat prompt tokens %d vs %d" % (r.usage.prompt_tokens, len(chat_ids)))
chunks = list(client.chat.completions.create(model=name, messages=msgs, max_tokens=20, temperature=0, stream=True))
sl.check(chunks[0].choices[0].delta.role == "assistant", "the first chat chunk names the role")
sl.check("".join(c.choices[0].delta.content or "" for c in chunks) == r.choices[0].message.content, "streamed chat")
r = client.chat.completions.create(model=name, messages=msgs, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
sl.check(len(r.choices[0].logprobs.content) == 4 and len(r.choices[0].logprobs.content[0].top_logprobs) == 2,
         "chat logprobs: %s" % r.choices[0].logprobs)
print("chat (template, whole, streamed, logprobs) ok")


def curl(*args):
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}"] + list(args), capture_output=True,
                         text=True, timeout=60)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def expect_error(code, want, body, what):
    try:
        err = json.loads(body)["error"]
        ok = code == want and isinstance(err["message"], str) and err["message"] and "type" in err
    except (ValueError, KeyError, TypeError):
        ok = False
    sl.check(ok, "%s: want %d with an OpenAI error object, got %d %s" % (what, want, code, body[:300]))


url = srv.url + "/v1/completions"
H = ["-H", "Content-Type: application/json"]
code, body = curl(url, *H, "-d", json.dumps({"model": name, "prompt": "Emma", "max_tokens": 3, "temperature": 0,
                                            "frequency_penalty": 0, "user": "x", "some_future_field": {"a": 1}}))
sl.check(code == 200 and json.loads(body)["choices"][0]["text"], "unknown fields are ignored: %d %s" % (code, body))
cases = [
    ("malformed JSON", 400, '{"prompt": "Emma", "max_tokens": '),
    ("not an object", 400, '[1, 2]'),
    ("max_tokens of the wrong type", 400, '{"prompt": "Emma", "max_tokens": "ten"}'),
    ("max_tokens 0", 400, '{"prompt": "Emma", "max_tokens": 0}'),
    ("max_tokens -3", 400, '{"prompt": "Emma", "max_tokens": -3}'),
    ("temperature of the wrong type", 400, '{"prompt": "Emma", "temperature": "hot"}'),
    ("prompt of the wrong type", 400, '{"prompt": 12}'),
    ("no prompt", 400, '{"max_tokens": 5}'),
    ("token id out of range", 400, '{"prompt": [1, 99999]}'),
    ("prompt longer than the context", 400, json.dumps({"prompt": [5] * 600})),
    ("n = 2", 400, '{"prompt": "Emma", "n": 2}'),
    ("echo", 400, '{"prompt": "Emma", "echo": true}'),
    ("another model", 404, '{"model": "gpt-4", "prompt": "Emma"}'),
]
for what, want, data in cases:
    code, body = curl(url, *H, "-d", data)
    expect_error(code, want, body, what)
big = json.dumps({"prompt": "x" * (70 * 1024)})
out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", url] + H + ["--data-binary", "@-"],
                     input=big, capture_output=True, text=True, timeout=60)
body, _, code = out.stdout.rpartition("\n")
expect_error(int(code), 413, body, "a body over --max-body-kb")
code, body = curl(srv.url + "/v1/embeddings", *H, "-d", "{}")
expect_error(code, 404, body, "an unknown route")
code, body = curl(srv.url + "/v1/completions")
expect_error(code, 405, body, "GET on a POST route")
code, body = curl(srv.url + "/v1/chat/completions", *H, "-d", '{"messages": [{"role": "tool", "content": "x"}]}')
expect_error(code, 400, body, "an unsupported role")
try:
    client.completions.create(model=name, prompt="Emma", max_tokens=0)
    sl.check(False, "openai: max_tokens 0 must fail")
except openai.BadRequestError as e:
    sl.check(e.status_code == 400, "openai sees the 400")
print("bad input: %d cases answered with OpenAI error objects" % (len(cases) + 5))

# a client that disconnects mid-stream frees its sequence at the next step
s = socket.create_connection(("127.0.0.1", srv.port))
body = json.dumps({"prompt": "Emma", "max_tokens": 400, "temperature": 0, "ignore_eos": True, "stream": True})
s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
           % (len(body), body)).encode())
got = b""
while got.count(b"data:") < 3:
    got += s.recv(4096)
sl.check(sl.metric(srv, "ropedist_requests_running") == 1, "the stream runs")
s.close()
t0 = time.time()
while sl.metric(srv, "ropedist_requests_running") != 0 and time.time() - t0 < 10:
    time.sleep(0.05)
sl.check(sl.metric(srv, "ropedist_requests_running") == 0 and sl.metric(srv, "ropedist_kv_blocks_used") == 0,
         "the disconnected stream's sequence and blocks are freed")
print("disconnect mid-stream: sequence freed after %.2f s" % (time.time() - t0))
code, text = sl.request(srv.url + "/metrics")
for m in ("ropedist_requests_total", "ropedist_prompt_tokens_total", "ropedist_generation_tokens_total",
          "ropedist_requests_waiting", "ropedist_kv_blocks_free", "ropedist_step_seconds_bucket"):
    sl.check(m in text, "/metrics has %s" % m)
sl.check(sl.request(srv.url + "/health")[0] == 200, "/health is 200")
srv.stop()

# the API key; chat without a template names the problem; completions still work
srv = sl.Server(np=1, args=["--api-key", "sesame"])
code, body = curl(srv.url + "/v1/completions", *H, "-d", '{"prompt": "Emma", "max_tokens": 2}')
expect_error(code, 401, body, "no API key")
code, body = curl(srv.url + "/v1/completions", *H, "-H", "Authorization: Bearer wrong", "-d", '{"prompt": "Emma"}')
expect_error(code, 401, body, "a wrong API key")
try:
    openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong").models.list()
    sl.check(False, "a wrong key must fail")
except openai.AuthenticationError:
    pass
client = openai.OpenAI(base_url=srv.url + "/v1", api_key="sesame")
sl.check(client.completions.create(model="default", prompt="Emma", max_tokens=2).usage.completion_tokens == 2,
         "the right key works")
try:
    client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    sl.check(False, "chat without a template must fail")
except openai.BadRequestError as e:
    sl.check("chat template" in str(e), "the 400 names the chat template: %s" % e)
sl.check("chat completions unavailable" in srv.text(), "a startup warning names the missing template")
srv.stop()
sl.finish("serve api")
