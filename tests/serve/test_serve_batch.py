"""Continuous batching across requests: 32 concurrent requests of different lengths (text and
token-id prompts, whole and streamed, with sampled requests running beside them) at np 2 give
every greedy request the offline one-at-a-time output; with a KV cache too small for them all
(--kv-cache-gb) requests wait and sequences are preempted and recomputed, and every request
still completes with the same output. Then SIGTERM to rank 0 drains (running requests finish,
new ones are refused, every rank exits 0), and a killed rank ends the server naming it."""
import concurrent.futures as cf
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import serve_lib as sl

try:
    import openai
except ImportError:
    sl.skip("the openai package is not installed (pip install -r tests/serve/requirements.txt)")
if not sl.MPIRUN:
    sl.skip("no mpirun")

rng = random.Random(15)
TEXTS = ["It is a truth universally acknowledged", "Emma", "Mr. Darcy said", "The weather was fine, and",
         "Elizabeth", "She had never seen"]
reqs = []
for i in range(32):
    if i % 3 == 0:
        p = {"prompt": TEXTS[i % len(TEXTS)]}
    else:
        p = {"prompt_ids": [0] + [rng.randrange(2, 4000) for _ in range(rng.randrange(1, 90))]}
    reqs.append((p, rng.randrange(4, 48), i % 2 == 1))
MAX_NEW = max(m for _, m, _ in reqs)


def run_all(srv, with_sampled):
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=300)

    def one(i):
        p, m, stream = reqs[i]
        prompt = p.get("prompt", p.get("prompt_ids"))
        if stream:
            chunks = client.completions.create(model="default", prompt=prompt, max_tokens=m, temperature=0, stream=True)
            return "".join(c.choices[0].text for c in chunks if c.choices)
        return client.completions.create(model="default", prompt=prompt, max_tokens=m, temperature=0).choices[0].text

    def sampled(i):
        return client.completions.create(model="default", prompt=TEXTS[i % 6], max_tokens=30, temperature=0.9,
                                         seed=i, extra_body={"top_k": 40}).choices[0].text

    with cf.ThreadPoolExecutor(max_workers=40) as ex:
        side = [ex.submit(sampled, i) for i in range(6)] if with_sampled else []
        futs = [ex.submit(one, i) for i in range(len(reqs))]
        out = [f.result() for f in futs]
        for f in side:
            f.result()
    return out


t0 = time.time()
ref_ids = sl.offline([p for p, _, _ in reqs], MAX_NEW, np=2, batch=32)
want = [sl.decode(ids[:m]) for ids, (_, m, _) in zip(ref_ids, reqs)]
print("offline reference (--prompts, np 2): %.1f s" % (time.time() - t0))

srv = sl.Server(np=2)
t0 = time.time()
got = run_all(srv, True)
same = sum(g == w for g, w in zip(got, want))
for i, (g, w) in enumerate(zip(got, want)):
    sl.check(g == w, "np 2, request %d: %r vs offline %r" % (i, g, w))
print("np 2: 32 concurrent requests (+6 sampled beside) in %.1f s, %d/32 equal to offline greedy"
      % (time.time() - t0, same))
steps = sl.metric(srv, "ropedist_steps_total")
gen = sl.metric(srv, "ropedist_generation_tokens_total")
sl.check(steps and gen and gen / steps > 2, "requests were batched: %s tokens in %s steps" % (gen, steps))

# SIGTERM to rank 0 while a request runs: it finishes, new ones get 503, every rank ends with 0
client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
result = {}


def long_request():
    try:
        r = client.completions.create(model="default", prompt="Emma", max_tokens=300, temperature=0, extra_body={"ignore_eos": True})
        result["tokens"] = r.usage.completion_tokens
    except Exception as e:  # noqa: BLE001 (reported below)
        result["error"] = repr(e)


th = threading.Thread(target=long_request)
th.start()
while sl.metric(srv, "ropedist_requests_running") != 1:
    time.sleep(0.02)
os.kill(srv.rank0_pid, signal.SIGTERM)
time.sleep(0.3)
try:  # no new connection is accepted; a kept-alive one would get 503
    code, body = sl.request(srv.url + "/health")
except OSError as e:
    code, body = "refused", e
sl.check(code in ("refused", 503), "a draining server takes no new requests: %s %s" % (code, body))
th.join(120)
sl.check(result.get("tokens") == 300, "the running request finished during the drain: %s" % result)
rc = srv.wait(60)
sl.check(rc == 0, "after the drain every rank ends with status 0 (got %s)" % rc)
sl.check("drained; every rank ends" in srv.text(), "the drain is logged")
print("SIGTERM: running request finished (%s tokens), server exited %s" % (result.get("tokens"), rc))

# a KV cache too small for the load: admission waits, preemption recomputes, nothing is lost
srv = sl.Server(np=1, args=["--kv-cache-gb", "0.0008", "--max-batch-tokens", "64"])
t0 = time.time()
got = run_all(srv, False)
for i, (g, w) in enumerate(zip(got, want)):
    sl.check(g == w, "small KV cache, request %d: %r vs offline %r" % (i, g, w))
pre = sl.metric(srv, "ropedist_preemptions_total")
sl.check(pre and pre > 0, "the small cache preempted sequences (%s)" % pre)
sl.check(sl.metric(srv, "ropedist_kv_blocks_used") == 0, "every block returned")
print("small KV cache (%d blocks): 32 requests in %.1f s, %d preemptions, outputs equal"
      % (sl.metric(srv, "ropedist_kv_blocks_free"), time.time() - t0, pre))
srv.stop()

# a lost rank ends the server with the CLI's message
srv = sl.Server(np=2)
r1 = subprocess.run(["pgrep", "-f", "-P", str(srv.proc.pid), "ropedist"], capture_output=True, text=True).stdout.split()
victims = [int(p) for p in r1 if int(p) != srv.rank0_pid]
if victims:
    os.kill(victims[0], signal.SIGKILL)
    rc = srv.wait(30)
    sl.check(rc not in (None, 0), "the server ends when a rank is lost (rc %s)" % rc)
    sl.check("lost rank 1" in srv.text(), "the survivors name the lost rank")
    print("SIGKILL to rank 1: server ended (rc %s)" % rc)
else:
    sl.check(False, "cannot find rank 1's process")
sl.finish("serve batching")
