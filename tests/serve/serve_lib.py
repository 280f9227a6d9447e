"""Helpers of the serve tests: start `ropedist serve` on a free loopback port (through mpirun),
wait until it answers, talk to it with urllib or curl, and end it. Every process a test starts
is ended by pid when the test ends, whatever happens."""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("RD_BIN_DIR") or os.path.join(os.path.dirname(__file__), "../../build")
SRC = os.environ.get("RD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "../..")
MPIRUN = os.environ.get("RD_MPIRUN") or shutil.which("mpirun")
CONFIG = os.path.join(SRC, "configs/default/config.json")
SKIP = 77
_servers = []
failures = 0


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL: " + what, flush=True)
    return cond


def finish(name):
    print("%s: %s" % (name, "FAILED (%d)" % failures if failures else "passed"))
    sys.exit(1 if failures else 0)


def mpi_env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return env


class Server:
    """`ropedist serve` on np ranks, port chosen by the server (--port 0) and read from its log."""

    def __init__(self, np=1, args=(), config=CONFIG, timeout=60):
        self.log = tempfile.NamedTemporaryFile(prefix="rd_serve_", suffix=".log", delete=False)
        cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(np),
               os.path.join(BIN, "ropedist"), "serve", "--device", "cpu", "--config", config,
               "--port", "0"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=mpi_env(),
                                     start_new_session=True)
        _servers.append(self)
        self.port = None
        self.rank0_pid = None
        t0 = time.time()
        while time.time() - t0 < timeout:
            text = self.text()
            m = re.search(r"^\S+:(\d+) \[r0/\d+\] INFO \S+ serving \S+ on http://[^:]+:(\d+)/v1",
                          text, re.M)
            if m:
                self.rank0_pid, self.port = int(m.group(1)), int(m.group(2))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("the server ended at start (rc %s):\n%s" % (self.proc.returncode, text))
            time.sleep(0.1)
        if not self.port:
            raise RuntimeError("the server did not start within %d s:\n%s" % (timeout, self.text()))
        self.url = "http://127.0.0.1:%d" % self.port

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


@atexit.register
def _stop_all():
    for s in _servers:
        s.stop()


def request(url, body=None, headers=None, method=None, timeout=120):
    """(status, parsed JSON or text) of one HTTP request."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def metric(server, name):
    _, text = request(server.url + "/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def offline(prompts, max_new, np=1, batch=1, extra=()):
    """Offline greedy output ids of each prompt ({"prompt"} or {"prompt_ids"}); batch 1 runs them
    one at a time (tests/mpi/test_batch shows batching gives the same tokens)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for p in prompts:
            f.write(json.dumps(p) + "\n")
    cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(np),
           os.path.join(BIN, "ropedist"), "--device", "cpu", "--config", CONFIG, "--prompts", f.name,
           "--output", "json", "--batch", str(batch), "--temperature", "0", "--max-new-tokens", str(max_new)] + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=300)
    os.unlink(f.name)
    if out.returncode:
        raise RuntimeError("offline run failed: %s" % out.stderr[-2000:])
    return [json.loads(l)["output_ids"] for l in out.stdout.splitlines() if l.strip()]


def decode(ids, tokenizer=None):
    tok = tokenizer or os.path.join(SRC, "configs/default/tokenizer.json")
    out = subprocess.run([os.path.join(BIN, "ropedist-tokenize"), "--tokenizer", tok, "--decode"],
                         input=json.dumps(ids), capture_output=True, text=True, timeout=60)
    return out.stdout


def encode(text, special=True):
    tok = os.path.join(SRC, "configs/default/tokenizer.json")
    args = [os.path.join(BIN, "ropedist-tokenize"), "--tokenizer", tok] + (["--special"] if special else [])
    return json.loads(subprocess.run(args, input=text, capture_output=True, text=True, timeout=60).stdout)


def chat_model_dir(template, bos="<s>", eos="</s>"):
    """A temp folder with the default model's config (absolute paths) and a tokenizer_config.json
    holding `template`; returns the config path."""
    d = tempfile.mkdtemp(prefix="rd_chat_")
    cfg = json.load(open(CONFIG))
    base = os.path.dirname(os.path.abspath(CONFIG))
    cfg["ropedist"] = {"checkpoint": os.path.join(base, "model.h5"),
                       "tokenizer": os.path.join(base, "tokenizer.json")}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    json.dump({"chat_template": template, "bos_token": bos, "eos_token": eos},
              open(os.path.join(d, "tokenizer_config.json"), "w"))
    return os.path.join(d, "config.json")
