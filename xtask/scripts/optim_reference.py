#!/usr/bin/env python3
"""NumPy reference for the five optimisers, checked against a trace written by the Rust side.

Usage: optim_reference.py TRACE.json [--rtol 1e-5] [--atol 1e-6]
       optim_reference.py --self-test

The updates are PyTorch's documented ones (torch.optim.SGD with dampening=0,
torch.optim.Adam, torch.optim.AdamW; no amsgrad, no maximize), per tensor, with
p the parameter, g its gradient, wd the weight decay and t the step from 1:

  sgd       g' = g + wd*p;  p -= lr*g'
  momentum  g' = g + wd*p;  b = g' if t == 1 else momentum*b + g';  p -= lr*b
  nesterov  b as for momentum;  p -= lr*(g' + momentum*b)
  adam      g' = g + wd*p;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2  (m = v = 0 at first)
            mhat = m/(1 - b1^t);  vhat = v/(1 - b2^t);  p -= lr*mhat/(sqrt(vhat) + eps)
  adamw     p *= 1 - lr*wd;  then adam with g' = g (decay decoupled from the gradient)

Trace accepted (other keys are ignored; numbers are float32 values as JSON numbers,
so null, NaN, Infinity, strings and booleans are rejected):

  {"runs": [{"name": str, "optimizer": "sgd" | "momentum" | "nesterov" | "adam" | "adamw",
             "lr": num, "weight_decay": num,
             "momentum": num,                  (momentum and nesterov only)
             "beta1": num, "beta2": num, "eps": num,       (adam and adamw only)
             "tensors": [str, ...],            (one name per tensor, at least one)
             "steps": [{"params_before": [[num, ...], ...],  (one flat list per tensor)
                        "grads":         [[num, ...], ...],
                        "params_after":  [[num, ...], ...]}, ...]}, ...]}

Every tensor keeps its length in steps[0].params_before. Each run is replayed from
steps[0].params_before with the trace's gradients, never resynchronised with the
trace, twice: in float64 (the formulas exactly) and in float32 (scalar coefficients
such as 1-b2 and 1-lr*wd worked out in float64 and cast once, as PyTorch does). An
element of params_after passes when it lies within |ref - got| <= atol + rtol*|ref|
(as numpy.allclose) of either replay: float32 rounding of a correct implementation
drifts from float64 over long runs (AdamW's 1-lr*wd is rounded the same way every
step), while the bugs worth catching are far larger. Each step's params_before must
equal the previous params_after exactly (as float32), and a run needs at least 20
steps. Prints one line per run: name, optimiser, steps, max abs and rel error of each
replay, then PASS or FAIL with its reasons. Exits 0 when all pass, 1 when any fails,
2 on a malformed trace (the message names the field).

--self-test writes a trace made with this script's own float32 update (and one AdamW
run in PyTorch's operation order), plus deliberately wrong variants, and checks that
the right runs pass and the wrong ones fail.
"""

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

MIN_STEPS = 20
HYPER = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
         "adam": ("beta1", "beta2", "eps"), "adamw": ("beta1", "beta2", "eps")}
ARRAYS = ("params_before", "grads", "params_after")


class BadInput(Exception):
    pass


def update(opt, hp, p, g, state, t):
    """One step of `opt` on one tensor in p's dtype; `state` is that tensor's dict.

    Scalar coefficients are worked out in float64 and cast once, as PyTorch does."""
    f, lr, wd = p.dtype.type, hp["lr"], hp["weight_decay"]
    if opt == "adamw":
        p = p * f(1 - lr * wd)
    else:
        g = g + f(wd) * p
    if opt == "sgd":
        return p - f(lr) * g
    if opt in ("momentum", "nesterov"):
        mu = f(hp["momentum"])
        b = state["b"] = g if t == 1 else mu * state["b"] + g
        return p - f(lr) * (g + mu * b if opt == "nesterov" else b)
    b1, b2, eps = hp["beta1"], hp["beta2"], f(hp["eps"])
    m = state["m"] = f(b1) * state.get("m", f(0)) + f(1 - b1) * g
    v = state["v"] = f(b2) * state.get("v", f(0)) + f(1 - b2) * g * g
    mhat, vhat = m / f(1 - b1 ** t), v / f(1 - b2 ** t)
    return p - f(lr) * mhat / (np.sqrt(vhat) + eps)


def number(run, key, where):
    x = run.get(key)
    if type(x) not in (int, float) or not math.isfinite(x):
        raise BadInput(f"{where}.{key}: missing or not a finite number")
    return float(x)


def vector(x, where, size):
    if not isinstance(x, list) or not all(type(v) in (int, float) for v in x):
        raise BadInput(f"{where}: not a flat list of numbers (null, strings, nesting?)")
    a = np.array(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise BadInput(f"{where}: non-finite value")
    if size is not None and a.size != size:
        raise BadInput(f"{where}: {a.size} values, but {size} in steps[0].params_before")
    return a.astype(np.float32)


def parse_run(run, where):
    if not isinstance(run, dict):
        raise BadInput(f"{where}: not an object")
    if not isinstance(run.get("name"), str):
        raise BadInput(f"{where}.name: missing or not a string")
    where = f"{where} ({run['name']})"
    opt, tensors, steps = run.get("optimizer"), run.get("tensors"), run.get("steps")
    if not isinstance(opt, str) or opt not in HYPER:
        raise BadInput(f"{where}.optimizer: {opt!r} is not one of {', '.join(HYPER)}")
    hp = {k: number(run, k, where) for k in ("lr", "weight_decay") + HYPER[opt]}
    if not isinstance(tensors, list) or not tensors or not all(isinstance(n, str) for n in tensors):
        raise BadInput(f"{where}.tensors: not a non-empty list of names")
    if not isinstance(steps, list) or not steps:
        raise BadInput(f"{where}.steps: missing, not a list, or empty")
    sizes, parsed = [None] * len(tensors), []
    for s, step in enumerate(steps):
        if not isinstance(step, dict):
            raise BadInput(f"{where}.steps[{s}]: not an object")
        entry = {}
        for key in ARRAYS:
            at = f"{where}.steps[{s}].{key}"
            if not isinstance(step.get(key), list) or len(step[key]) != len(tensors):
                raise BadInput(f"{at}: missing or not a list of {len(tensors)} tensors")
            entry[key] = [vector(x, f"{at}[{i}] ({tensors[i]})", sizes[i]) for i, x in enumerate(step[key])]
            sizes = [a.size for a in entry[key]]
        parsed.append(entry)
    return {"name": run["name"], "opt": opt, "hp": hp, "tensors": tensors, "steps": parsed}


def load(path):
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: {e}")
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not runs:
        raise BadInput("runs: missing, not a list, or empty")
    return [parse_run(r, f"runs[{i}]") for i, r in enumerate(runs)]


def check(run, rtol, atol):
    """Replays one run in float64 and float32 side by side; returns (passed, report line)."""
    steps, names, hp, reasons = run["steps"], run["tensors"], run["hp"], []
    if len(steps) < MIN_STEPS:
        reasons.append(f"{len(steps)} steps, at least {MIN_STEPS} needed")
    for s in range(1, len(steps)):
        bad = [i for i, (a, b) in enumerate(zip(steps[s - 1]["params_after"], steps[s]["params_before"]))
               if not np.array_equal(a, b)]
        if bad:
            reasons.append(f"steps[{s}].params_before[{bad[0]}] ({names[bad[0]]}) != steps[{s - 1}].params_after")
            break
    replays = {dt: ([p.astype(dt) for p in steps[0]["params_before"]], [{} for _ in names])
               for dt in (np.float64, np.float32)}
    worst, first = {dt: [0.0, 0.0] for dt in replays}, None  # max abs, max rel error
    for t, step in enumerate(steps, 1):
        for i, (g, got) in enumerate(zip(step["grads"], step["params_after"])):
            got, close = got.astype(np.float64), np.zeros(got.size, bool)
            for dt, (params, states) in replays.items():
                params[i] = update(run["opt"], hp, params[i], g.astype(dt), states[i], t)
                ref = params[i].astype(np.float64)
                diff = np.abs(ref - got)
                worst[dt][0] = max(worst[dt][0], diff.max(initial=0.0))
                worst[dt][1] = max(worst[dt][1], (diff / np.maximum(np.abs(ref), 1e-30)).max(initial=0.0))
                close |= diff <= atol + rtol * np.abs(ref)
            bad = np.flatnonzero(~close)
            if bad.size and first is None:
                j, ref = bad[0], replays[np.float64][0][i]
                first = f"first mismatch at steps[{t - 1}] {names[i]}[{j}]: f64 {ref[j]:.9g}, trace {got[j]:.9g}"
    reasons += [first] if first else []
    (a64, r64), (a32, r32) = worst[np.float64], worst[np.float32]
    verdict = "FAIL: " + "; ".join(reasons) if reasons else "PASS"
    return not reasons, (f"{run['name']:<26} {run['opt']:<8} steps {len(steps):>4}  f64 abs {a64:.2e} "
                         f"rel {r64:.2e}  f32 abs {a32:.2e} rel {r32:.2e}  {verdict}")


def torch_order_adamw(hp, p, g, st, t):
    """AdamW in float32 in PyTorch's own operation order: right, but rounded differently."""
    f, m0, v0 = np.float32, st.get("m", 0 * g), st.get("v", 0 * g)
    p = p * f(1 - hp["lr"] * hp["weight_decay"])
    m = st["m"] = m0 + (g - m0) * f(1 - hp["beta1"])  # exp_avg.lerp_
    v = st["v"] = v0 * f(hp["beta2"]) + g * g * f(1 - hp["beta2"])
    denom = np.sqrt(v) / f(math.sqrt(1 - hp["beta2"] ** t)) + f(hp["eps"])
    return p + f(-hp["lr"] / (1 - hp["beta1"] ** t)) * (m / denom)


def simulate(name, opt, wd=0.0, steps=25, seed=0, step=None):
    """A float32 trace run labelled `opt`, made by update(opt) or by step(hp, p, g, state, t)."""
    hp = {"lr": {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05}.get(opt, 0.01), "weight_decay": wd,
          "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    step = step or (lambda hp, p, g, st, t: update(opt, hp, p, g, st, t))
    rng = np.random.default_rng(seed)
    sizes = {"layers.0.weight": 12, "layers.0.bias": 3, "layers.1.weight": 6}
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes.values()]
    targets = [rng.standard_normal(n).astype(np.float32) for n in sizes.values()]
    states, trace = [{} for _ in params], []
    for t in range(1, steps + 1):  # g of 0.5*|p - target|^2 plus noise, some entries exactly 0
        grads = [((p - c + 0.1 * rng.standard_normal(p.size)) * (rng.random(p.size) > 0.2)).astype(np.float32)
                 for p, c in zip(params, targets)]
        after = [step(hp, p, g, st, t) for p, g, st in zip(params, grads, states)]
        trace.append({k: [a.tolist() for a in v] for k, v in zip(ARRAYS, (params, grads, after))})
        params = after
    return {"name": name, "optimizer": opt, **hp, "tensors": list(sizes), "steps": trace}


def self_test(rtol, atol):
    good = [simulate(f"{o}-wd{wd}", o, wd=wd, seed=k)
            for k, (o, wd) in enumerate((o, wd) for o in HYPER for wd in (0.0, 0.01))]
    good.append(simulate("adamw-torch-order-200", "adamw", wd=0.1, steps=200, step=torch_order_adamw))
    broken = simulate("broken-chain", "sgd")
    broken["steps"][7]["params_before"][1][0] += 1e-3
    bad = [simulate("adam-no-bias-correction", "adam",  # t -> huge makes b^t = 0: no correction
                    step=lambda hp, p, g, st, t: update("adam", hp, p, g, st, 10**9)),
           simulate("adamw-as-adam-l2", "adamw", wd=0.01, step=lambda *a: update("adam", *a)),
           simulate("nesterov-as-momentum", "nesterov", step=lambda *a: update("momentum", *a)),
           simulate("sgd-too-short", "sgd", steps=MIN_STEPS - 1), broken]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        with open(path, "w") as fh:
            json.dump({"runs": good + bad}, fh)
        for k, run in enumerate(load(path)):
            passed, line = check(run, rtol, atol)
            ok &= passed == (k < len(good))
            print(f"{line}  [{'as expected' if passed == (k < len(good)) else 'UNEXPECTED'}]")
        del good[0]["lr"]
        with open(path, "w") as fh:
            json.dump({"runs": good[:1]}, fh)
        try:
            load(path)
            ok = False
            print("UNEXPECTED: a run without lr was accepted")
        except BadInput as e:
            print(f"bad input rejected as expected: {e}")
    print("self-test passed" if ok else "self-test FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", help="trace JSON written by the Rust side")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--self-test", action="store_true", help="check this script against itself")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.rtol, args.atol)
    if not args.trace:
        ap.error("TRACE.json is required unless --self-test is given")
    try:
        runs = load(args.trace)
    except BadInput as e:
        print(f"bad trace: {e}", file=sys.stderr)
        return 2
    results = [check(run, args.rtol, args.atol) for run in runs]
    for _, line in results:
        print(line)
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
