"""Inference benchmark: the engine (`nesa-node generate`) against llama.cpp (llama-cpp-python)
on the same GGUF file, same prompts, same machine, same run. Run by `scripts/bench inference`.

For each prompt the engine's greedy tokens are compared token for token with llama.cpp's,
fed the engine's own prompt token ids (so only the model math is compared; the tokenizer is
checked separately against llama.cpp's). Speeds are taken from each side's own timers, model
loading excluded: prefill = prompt tokens / time to the first logits; decode = forward passes
after that / their time.
"""

import json
import os
import subprocess
import sys
import time

MAX_TOKENS = 64
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the ocean.",
    "Explain in two sentences why the sky is blue.",
    "List three prime numbers greater than 10.",
    "Translate 'good morning' into Spanish.",
]
# A long prompt, so prefill speed is measured on a few hundred tokens.
LONG_PROMPT = "Summarize this text in one sentence: " + " ".join(
    [
        "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg",
        "combined movable metal type, oil-based inks and a screw press adapted from wine making.",
        "Books, which had been copied by hand for centuries, could now be produced in hundreds of",
        "identical copies, and their price fell quickly. Within fifty years presses operated in more",
        "than two hundred cities across Europe, and millions of volumes had been printed. The new",
        "technology spread scientific ideas, religious debates and news faster than ever before,",
        "and it helped standardise spelling and grammar in many languages.",
    ]
    * 3
)
TOKENIZER_CHECK = "<|im_start|>user\nHello, world! 12345 café 你好<|im_end|>"
STOP_TOKENS = {0, 2}  # <|endoftext|>, <|im_end|>


def engine(binary, model, prompt, threads, extra=()):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [binary, "generate", "--model", model, "--prompt", prompt, "--max-tokens", str(MAX_TOKENS), "--json", *extra],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def llama_cpp_run(llm, prompt_ids):
    import llama_cpp

    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    tokens = []
    started = time.perf_counter()
    first = None
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        if first is None:
            first = time.perf_counter()
        if token in STOP_TOKENS:
            break
        tokens.append(token)
        if len(tokens) >= MAX_TOKENS:
            break
    ended = time.perf_counter()
    perf = llama_cpp.llama_perf_context(llm.ctx)
    return {
        "tokens": tokens,
        "prefill_ms": perf.t_p_eval_ms,
        "prefill_tokens": perf.n_p_eval,
        "decode_ms": perf.t_eval_ms,
        "decode_steps": perf.n_eval,
        "wall_prefill_ms": (first - started) * 1000,
        "wall_decode_ms": (ended - first) * 1000,
    }


def peak_rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def rate(count, ms):
    return count * 1000.0 / ms if ms > 0 else 0.0


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main():
    binary, model, report_path = sys.argv[1:4]
    import llama_cpp

    model_bytes = os.path.getsize(model)
    prompts = PROMPTS + [LONG_PROMPT]
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say("# Inference benchmark: nesa-node engine vs llama.cpp")
    say()
    say(f"Model `{os.path.basename(model)}` ({model_bytes / 1e6:.1f} MB), greedy, up to {MAX_TOKENS} new tokens per prompt, "
        f"{os.cpu_count()} CPUs, llama-cpp-python {llama_cpp.__version__} (llama.cpp built for this CPU without AMX). "
        "Engine built with `-C target-cpu=native`. Both sides get the same prompt token ids (the chat template applied by the engine).")
    say()

    # Engine runs: the default (Q4_1 through the engine's kernel), candle's own kernels (the
    # baseline the engine started from) and Q4_1 requantized to Q8_0; each with 1 and 2 threads.
    formats = [("engine", "stored"), ("engine, candle kernels", "candle"), ("engine, Q4_1→Q8_0", "q8")]
    configs = [(f"{label}, {t} thread{'s' if t > 1 else ''}", t, ("--weights", weights)) for label, weights in formats for t in (1, 2)]
    engine_runs = {name: [engine(binary, model, p, threads, extra) for p in prompts] for name, threads, extra in configs}
    reference = engine_runs[configs[0][0]]

    llama_runs = {}
    llama_rss = {}
    for threads in (1, 2):
        llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
        tokenizer_ids = llm.tokenize(TOKENIZER_CHECK.encode(), add_bos=False, special=True)
        llm_runs = [llama_cpp_run(llm, run["prompt_tokens"]) for run in reference]
        llama_runs[f"llama.cpp, {threads} thread{'s' if threads > 1 else ''}"] = llm_runs
        llama_rss[threads] = peak_rss_kb()
        del llm

    engine_tokenizer = engine(binary, model, TOKENIZER_CHECK, 1, ("--raw",))["prompt_tokens"]
    say("## Greedy outputs: engine vs llama.cpp (1 thread), token for token")
    say()
    say(f"Tokenizer on `{TOKENIZER_CHECK!r}`: {'identical' if engine_tokenizer == tokenizer_ids else 'DIFFERENT'} "
        f"to llama.cpp's ({len(engine_tokenizer)} tokens).")
    say()
    compared = [(label, engine_runs[f"{label}, 1 thread"]) for label, _ in formats]
    compared += [(f"{label}, 2 threads", engine_runs[f"{label}, 2 threads"]) for label, _ in formats[:1]]
    compared += [("llama.cpp, 2 threads", llama_runs["llama.cpp, 2 threads"])]
    say("| prompt | prompt tokens | llama.cpp tokens | " + " | ".join(label for label, _ in compared) + " |")
    say("|---|---|---|" + "---|" * len(compared))
    llama_reference = llama_runs["llama.cpp, 1 thread"]
    default_equal = True
    notes = []
    for index, (prompt, theirs) in enumerate(zip(prompts, llama_reference)):
        cells = []
        for label, runs in compared:
            ours = runs[index]
            diff = first_difference(ours["tokens"], theirs["tokens"])
            if label == "engine":
                default_equal &= diff is None
            if diff is None:
                cells.append("equal")
                continue
            cell = f"differs at {diff}"
            if "top2" in ours and diff < len(ours["top2"]) and len(ours["top2"][diff]) == 2:
                (a, lp_a), (b, lp_b) = ours["top2"][diff]
                notes.append(f"- {label}, prompt {index + 1}, token {diff}: the engine's two most likely tokens there are "
                             f"{a} (log p {lp_a:.3f}) and {b} ({lp_b:.3f}), llama.cpp chose {theirs['tokens'][diff] if diff < len(theirs['tokens']) else 'to stop'}.")
            cells.append(cell)
        short = prompt if len(prompt) < 50 else prompt[:47] + "..."
        say(f"| {short} | {len(reference[index]['prompt_tokens'])} | {len(theirs['tokens'])} | " + " | ".join(cells) + " |")
    say()
    say("The default engine's greedy outputs equal llama.cpp's on every prompt." if default_equal else
        "The default engine's greedy outputs differ from llama.cpp's on some prompts (see below).")
    if notes:
        say()
        say("Where outputs differ, the two most likely tokens are nearly tied, so the last bits of the "
            "floating-point sums decide: candle's scalar Q4_1 kernel adds block by block, ggml (and the engine's "
            "kernel) accumulate 8 lanes with fused multiply-adds; requantizing to Q8_0 changes the weights themselves.")
        say()
        for note in notes:
            say(note)
    say()

    say("## Speed (tokens/s; model load excluded)")
    say()
    say("| run | prefill tok/s (short prompts) | prefill tok/s (long prompt) | decode tok/s |")
    say("|---|---|---|---|")
    speeds = {}
    for name, runs in list(engine_runs.items()) + list(llama_runs.items()):
        short = runs[:-1]
        if name.startswith("engine"):
            pre_short = rate(sum(len(r["prompt_tokens"]) for r in short), sum(r["prefill_ms"] for r in short))
            pre_long = rate(len(runs[-1]["prompt_tokens"]), runs[-1]["prefill_ms"])
            decode = rate(sum(r["decode_steps"] for r in runs), sum(r["decode_ms"] for r in runs))
        else:
            pre_short = rate(sum(r["prefill_tokens"] for r in short), sum(r["prefill_ms"] for r in short))
            pre_long = rate(runs[-1]["prefill_tokens"], runs[-1]["prefill_ms"])
            decode = rate(sum(r["decode_steps"] for r in runs), sum(r["decode_ms"] for r in runs))
        speeds[name] = (pre_short, pre_long, decode)
        say(f"| {name} | {pre_short:.1f} | {pre_long:.1f} | {decode:.1f} |")
    say()
    say("Ratios (engine / llama.cpp with the same thread count; >1 means the engine is faster), and best against best:")
    say()
    say("| engine run | vs | prefill (short) | prefill (long) | decode |")
    say("|---|---|---|---|---|")
    pairs = [(ours, "llama.cpp, " + ours.split(", ")[-1]) for ours in engine_runs]
    best = lambda names, i: max(names, key=lambda n: speeds[n][i])
    engine_names, llama_names = list(engine_runs), list(llama_runs)
    for ours, theirs in pairs:
        a, b = speeds[ours], speeds[theirs]
        say(f"| {ours} | {theirs} | {a[0] / b[0]:.2f}× | {a[1] / b[1]:.2f}× | {a[2] / b[2]:.2f}× |")
    default_names = [n for n in engine_names if n.startswith("engine, ") and "candle" not in n and "Q8_0" not in n]
    ratios = [speeds[best(default_names, i)][i] / speeds[best(llama_names, i)][i] for i in range(3)]
    say(f"| best default engine run | best llama.cpp run | {ratios[0]:.2f}× | {ratios[1]:.2f}× | {ratios[2]:.2f}× |")
    say()
    say("```")
    best = max(v[2] for v in speeds.values())
    for name, (_, _, decode) in speeds.items():
        say(f"{name:32} {'#' * max(1, round(40 * decode / best))} {decode:.1f} decode tok/s")
    say("```")
    say()

    say("## Memory")
    say()
    say("| process | peak RSS | × model file |")
    say("|---|---|---|")
    for name, runs in engine_runs.items():
        rss = max(r["peak_rss_kb"] or 0 for r in runs) * 1024
        say(f"| nesa-node generate ({name}) | {rss / 1e6:.1f} MB | {rss / model_bytes:.2f}× |")
    for threads, rss in llama_rss.items():
        say(f"| python + llama.cpp (cumulative, after the {threads}-thread run; model mmapped) | {rss * 1024 / 1e6:.1f} MB | {rss * 1024 / model_bytes:.2f}× |")
    say()

    os.makedirs(os.path.dirname(report_path), exist_ok=True)
    with open(report_path, "w") as report:
        report.write("\n".join(lines) + "\n")
    print(f"report: {report_path}")


if __name__ == "__main__":
    main()
