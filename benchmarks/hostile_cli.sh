#!/usr/bin/env bash
# Hostile and careless inputs to the CLI: each case's exit status, wall time and last stderr line.
# Usage: benchmarks/hostile_cli.sh [SRC_DIR]   (default: this checkout's src/). To compare with an older
# version: `git worktree add /tmp/old REV && benchmarks/hostile_cli.sh /tmp/old/src`.
# Every case is also a test (tests/test_cli_errors.py, test_data.py, test_calls.py); this script gives the
# times and messages side by side. Old versions may hang on the /dev/zero cases: each case is capped at 120 s.
SRC=${1:-$(cd "$(dirname "$0")/.." && pwd)/src}
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
W=$(mktemp -d)
export PYTHONPATH=$SRC HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
run() { local name=$1; shift; local t0=$EPOCHREALTIME; timeout 120 "$PY" -c 'import sys; from toolace_r.cli import main; sys.exit(main(sys.argv[1:]))' "$@" >$W/out 2>$W/err </dev/null; local rc=$?; local t1=$EPOCHREALTIME;
  printf '%-34s rc=%-3s %6.2fs  %s\n' "$name" "$rc" "$(awk "BEGIN{print $t1 - $t0}")" "$(tail -c 300 $W/err | tail -1 | cut -c1-200)"; }
python3 - "$W" <<'PY'
import json, sys, os
w = sys.argv[1]
open(f"{w}/under.txt","w").write("[f(a=\"_tcr" + "_"*65000 + "\")]")
open(f"{w}/bighex.jsonl","w").write(json.dumps({"id": "simple_python_0", "result": "[f(x=0x" + "f"*5000 + ")]"}) + "\n")
open(f"{w}/surr.txt","w",encoding="utf-8", errors="surrogatepass").write('[f(a="x\ud800")]')
open(f"{w}/deep.jsonl","w").write('{"id":"simple_python_0","result":' + "["*100000 + "]"*100000 + "}\n")
open(f"{w}/bignum.jsonl","w").write('{"id":"simple_python_0","result":' + "9"*5000 + "}\n")
open(f"{w}/bin.jsonl","wb").write(b'\xff\xfe\x00garbage\n')
os.makedirs(f"{w}/dirpred.jsonl", exist_ok=True)
open(f"{w}/afile","w").write("x")
msgs = [{"role":"user","content":"q"},{"role":"assistant","content":"[f(a=1)]"}]
deep_tool = {"name": "f", "parameters": {"type":"object","properties":{"a":{"type":"object","$defs":{}}}}}
d = deep_tool["parameters"]["properties"]["a"]["$defs"]
for _ in range(3000):
    d["x"] = {"$defs": {}}; d = d["x"]["$defs"]
sys.setrecursionlimit(100000)
open(f"{w}/deeptool.jsonl","w").write(json.dumps({"messages": msgs, "tools": [deep_tool]}) + "\n")
open(f"{w}/surr.jsonl","w").write(json.dumps({"messages": [{"role":"user","content":"q\ud800"},{"role":"assistant","content":"[f(a=\"\\ud800\")]"}]}) + "\n")
open(f"{w}/bighexgold.jsonl","w").write(json.dumps({"messages": [{"role":"user","content":"q"},{"role":"assistant","content":"[f(a=0x" + "f"*5000 + ")]"}]}) + "\n" + json.dumps({"messages": msgs}) + "\n")
open(f"{w}/badutf.jsonl","wb").write(json.dumps({"messages": msgs}).encode() + b"\n\xff\xfe\n" + json.dumps({"messages": msgs}).encode() + b"\n")
os.makedirs(f"{w}/datadir", exist_ok=True); os.makedirs(f"{w}/datadir/sub.jsonl", exist_ok=True)
sysmsg = "Here is a list of functions in JSON format that you can invoke. " + "[{" * 250000
open(f"{w}/toolace.json","w").write(json.dumps([{"id": "t1", "system": sysmsg, "conversations": [{"from":"user","value":"q"},{"from":"assistant","value":"[f(a=1)]"}]}]))
PY
run "parse 65KB underscores" parse "$(cat $W/under.txt)"
run "parse lone surrogate (argv)" parse "$(printf '[f(a="x\xed\xa0\x80")]')"
run "parse JSON \\ud800 argument" parse '{"name": "f", "arguments": {"a": "\ud800"}}'
run "eval 5000-digit hex prediction" eval --categories simple_python --limit 1 --predictions $W/bighex.jsonl --out $W/o1
run "eval predictions nested 100k" eval --categories simple_python --limit 1 --predictions $W/deep.jsonl --out $W/o2
run "eval predictions 5000-digit num" eval --categories simple_python --limit 1 --predictions $W/bignum.jsonl --out $W/o3
run "eval predictions binary" eval --categories simple_python --limit 1 --predictions $W/bin.jsonl --out $W/o4
run "eval --predictions a directory" eval --categories simple_python --limit 1 --predictions $W/dirpred.jsonl --out $W/o5
run "eval --out is a file" eval --categories simple_python --limit 1 --predictions $W/bighex.jsonl --out $W/afile
run "eval --out under a file" eval --categories simple_python --limit 1 --predictions $W/bighex.jsonl --out $W/afile/x
run "eval --out read-only" eval --categories simple_python --limit 1 --predictions $W/bighex.jsonl --out /sys/kernel/toolace
run "eval --limit -1" eval --categories simple_python --limit -1 --predictions $W/bighex.jsonl --out $W/o6
run "data show deep tool schema" data show jsonl:$W/deeptool.jsonl
run "data show deep tool --skip-invalid" data show jsonl:$W/deeptool.jsonl --skip-invalid
run "data show surrogates" data show jsonl:$W/surr.jsonl
run "data show 5000-hex gold --skip" data show jsonl:$W/bighexgold.jsonl --skip-invalid
run "data show invalid utf-8 --skip" data show jsonl:$W/badutf.jsonl --skip-invalid
run "data show toolace:/dev/zero" data show toolace:/dev/zero
run "data show xlam:/dev/zero" data show xlam:/dev/zero
run "data show dir *.jsonl in folder" data show jsonl:$W/datadir/sub.jsonl
run "data show toolace 1MB system" data show toolace:$W/toolace.json
run "data show toolace:nonexistent" data show toolace:nonexistent
run "data convert into a directory" data convert jsonl:$W/surr.jsonl $W/datadir
run "data convert read-only" data convert jsonl:$W/surr.jsonl /sys/kernel/x.jsonl
rm -rf $W
