#!/usr/bin/env python3
"""Turns one bench/run.sh session's raw files into results.json and results.md.

    python3 bench/report.py --work WORKDIR --json OUT.json --md OUT.md

Reads from WORKDIR: meta.env (key=value lines), runs.jsonl (one wrk run per
line, with CPU tick and RSS samples), ttfe.jsonl (time-to-first-event
samples) and failures.txt. Every number is a median over the repetitions of
this session; every ratio compares numbers from this same session.
"""

import argparse
import json
import os
import statistics

TARGETS = {
    # key: (target, comparison, unit)
    "added_p50_us_c1": (25, "<=", "µs"),
    "throughput_ratio_vs_nginx_c64": (0.9, ">=", "×"),
    "sse_idle_10k_rss_mb": (100, "<", "MB"),
    "ttfe_delta_ms": (1, "<=", "ms"),
}
ORDER = ["direct", "nginx", "gateway", "nginx-list", "gateway+filter"]
DESCRIBE = {
    "direct": "wrk → upstream (nginx static JSON-RPC responder), tools/call",
    "nginx": "wrk → nginx reverse proxy (no auth, keepalive) → upstream, tools/call",
    "gateway": "wrk → gateway (JWT + 50-rule policy + JSON-RPC inspection) → upstream, tools/call",
    "nginx-list": "wrk → nginx reverse proxy → upstream, tools/list (60 tools, unfiltered; baseline)",
    "gateway+filter": "wrk → gateway → upstream, tools/list, 60 tools filtered to 40",
}


def load_meta(path: str) -> dict:
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if not k:
                continue
            if k.endswith("_json"):
                meta[k] = json.loads(v) if v else None
            elif v in ("true", "false"):
                meta[k] = v == "true"
            else:
                try:
                    meta[k] = int(v)
                except ValueError:
                    try:
                        meta[k] = float(v)
                    except ValueError:
                        meta[k] = v
    return meta


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rnd(x, n=1):
    return None if x is None else round(x, n)


def pct(ticks, clk, wall):
    return 100.0 * (ticks[1] - ticks[0]) / (clk * wall) if wall > 0 else None


def summarize_runs(runs: list, ncpu: int) -> dict:
    groups = {}
    for r in runs:
        wall = float(r["t1"]) - float(r["t0"])
        w = r["wrk"]
        busy = r["sys_ticks"][2] - r["sys_ticks"][0]
        total = r["sys_ticks"][3] - r["sys_ticks"][1]
        row = {
            "rep": r["rep"],
            "p50_us": w and w["p50_us"],
            "p90_us": w and w["p90_us"],
            "p99_us": w and w["p99_us"],
            "rps": w and w["rps"],
            "requests": w and w["requests"],
            "errors": w and {k: v for k, v in w.items() if k.startswith("err_") and v},
            "gateway_cpu_pct": rnd(pct(r["gateway_ticks"], r["clk_tck"], wall))
            if r["config"].startswith("gateway") else None,
            "nginx_cpu_pct": rnd(pct(r["nginx_ticks"], r["clk_tck"], wall)),
            "system_busy_pct": rnd(100.0 * busy / total if total else None),
            "gateway_rss_peak_kb": r["gateway_rss_peak_kb"] or None,
            "wrk_cpu_pct": rnd(100.0 * r["wrk_cpu_s"] / wall) if wall > 0 else None,
        }
        # CPU used by processes that are not part of this run (builds, tests...): noise.
        ours = sum(x or 0 for x in (row["gateway_cpu_pct"], row["nginx_cpu_pct"], row["wrk_cpu_pct"]))
        row["other_cpu_pct"] = rnd(max(0.0, row["system_busy_pct"] * ncpu - ours)) \
            if row["system_busy_pct"] is not None else None
        groups.setdefault((r["config"], r["conns"]), []).append(row)
    out = {}
    for (config, conns), rows in sorted(groups.items(), key=lambda kv: (
            ORDER.index(kv[0][0]) if kv[0][0] in ORDER else 99, kv[0][1])):
        rps = [x["rps"] for x in rows if x["rps"] is not None]
        out.setdefault(config, {})[f"c{conns}"] = {
            "p50_us": med(x["p50_us"] for x in rows),
            "p99_us": med(x["p99_us"] for x in rows),
            "rps": rnd(med(rps), 0),
            "rps_min": rnd(min(rps), 0) if rps else None,
            "rps_max": rnd(max(rps), 0) if rps else None,
            "gateway_cpu_pct": rnd(med(x["gateway_cpu_pct"] for x in rows)),
            "nginx_cpu_pct": rnd(med(x["nginx_cpu_pct"] for x in rows)),
            "system_busy_pct": rnd(med(x["system_busy_pct"] for x in rows)),
            "wrk_cpu_pct": rnd(med(x["wrk_cpu_pct"] for x in rows)),
            "other_cpu_pct": rnd(med(x["other_cpu_pct"] for x in rows)),
            "other_cpu_pct_max": max((x["other_cpu_pct"] or 0 for x in rows), default=None),
            "gateway_rss_peak_kb": max((x["gateway_rss_peak_kb"] or 0 for x in rows), default=0) or None,
            "runs": rows,
        }
    return out


def per_rep_ratio(configs, a, b, conns, field):
    ra = {x["rep"]: x[field] for x in configs.get(a, {}).get(conns, {}).get("runs", [])}
    rb = {x["rep"]: x[field] for x in configs.get(b, {}).get(conns, {}).get("runs", [])}
    return [round(ra[k] / rb[k], 3) for k in sorted(ra) if ra[k] and rb.get(k)]


def per_rep_delta(configs, a, b, conns, field):
    ra = {x["rep"]: x[field] for x in configs.get(a, {}).get(conns, {}).get("runs", [])}
    rb = {x["rep"]: x[field] for x in configs.get(b, {}).get(conns, {}).get("runs", [])}
    return [ra[k] - rb[k] for k in sorted(ra) if ra[k] is not None and rb.get(k) is not None]


def get(configs, config, conns, field):
    return configs.get(config, {}).get(conns, {}).get(field)


def rss_at_10k(held, before_kb, held_kb):
    """(MB at 10k streams, extrapolated?, kB per stream) from one hold's RSS before and while held."""
    per_stream_kb = (held_kb - before_kb) / held if held else None
    if held >= 10000:
        return held_kb / 1024, False, per_stream_kb
    if per_stream_kb is not None:
        # Fewer streams than 10k (descriptor limit or smoke mode): scale linearly.
        return (before_kb + per_stream_kb * 10000) / 1024, True, per_stream_kb
    return None, None, per_stream_kb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    a = ap.parse_args()

    meta = load_meta(os.path.join(a.work, "meta.env"))
    with open(os.path.join(a.work, "runs.jsonl")) as f:
        runs = [json.loads(l) for l in f if l.strip()]
    ttfe = {"direct": [], "gateway": []}
    ttfe_fail = 0
    tpath = os.path.join(a.work, "ttfe.jsonl")
    if os.path.exists(tpath):
        with open(tpath) as f:
            for line in f:
                j = json.loads(line)
                ttfe[j["target"]].extend(j["result"]["samples_ms"])
                ttfe_fail += j["result"].get("failed", 0)
    with open(os.path.join(a.work, "failures.txt")) as f:
        failures = [l.strip() for l in f if l.strip()]

    configs = summarize_runs(runs, int(meta.get("nproc") or 1))

    # Headline numbers.
    gw_p50, direct_p50 = get(configs, "gateway", "c1", "p50_us"), get(configs, "direct", "c1", "p50_us")
    nginx_p50 = get(configs, "nginx", "c1", "p50_us")
    added = gw_p50 - direct_p50 if gw_p50 is not None and direct_p50 is not None else None
    gw_rps, nginx_rps = get(configs, "gateway", "c64", "rps"), get(configs, "nginx", "c64", "rps")
    ratio = gw_rps / nginx_rps if gw_rps and nginx_rps else None
    f_rps, nl_rps = get(configs, "gateway+filter", "c64", "rps"), get(configs, "nginx-list", "c64", "rps")

    held = (meta.get("sse_held_json") or {}).get("held", 0)
    still = (meta.get("sse_end_json") or {}).get("still_open", 0)
    before_kb, held_kb = meta.get("sse_gateway_rss_before_kb", 0), meta.get("sse_gateway_rss_held_kb", 0)
    rss10k, extrapolated, per_stream_kb = rss_at_10k(held, before_kb, held_kb)
    # The same streams through the nginx proxy (master + workers), computed the same way.
    ng_held = (meta.get("sse_nginx_held_json") or {}).get("held", 0)
    ng_still = (meta.get("sse_nginx_end_json") or {}).get("still_open", 0)
    ng_before_kb, ng_held_kb = meta.get("sse_nginx_rss_before_kb"), meta.get("sse_nginx_rss_held_kb")
    if ng_before_kb and ng_held_kb:
        ng_rss10k, ng_extrapolated, ng_per_stream_kb = rss_at_10k(ng_held, ng_before_kb, ng_held_kb)
    else:
        ng_rss10k, ng_extrapolated, ng_per_stream_kb = None, None, None
    rss_ratio = rss10k / ng_rss10k if rss10k and ng_rss10k else None

    t_direct, t_gw = med(ttfe["direct"]), med(ttfe["gateway"])
    ttfe_delta = t_gw - t_direct if t_direct is not None and t_gw is not None else None

    load_peaks = [x["gateway_rss_peak_kb"] for c in ("gateway", "gateway+filter")
                  for x in configs.get(c, {}).get("c64", {}).get("runs", []) if x["gateway_rss_peak_kb"]]

    result = {
        "added_p50_us_c1": added,
        "throughput_ratio_vs_nginx_c64": rnd(ratio, 3),
        "sse_idle_10k_rss_mb": rnd(rss10k, 1),
        "ttfe_delta_ms": rnd(ttfe_delta, 3),
        "sse_idle_10k_rss_extrapolated": extrapolated,
        "sse_streams_requested": meta.get("sse_requested"),
        "sse_streams_attempted": meta.get("sse_attempted"),
        "sse_streams_held": held,
        "sse_streams_still_open_after_hold": still,
        "sse_gateway_rss_before_mb": rnd(before_kb / 1024, 1),
        "sse_gateway_rss_held_mb": rnd(held_kb / 1024, 1),
        "sse_gateway_rss_per_stream_kb": rnd(per_stream_kb, 2),
        "sse_gateway_fds_held": meta.get("sse_gateway_fds_held"),
        "sse_idle_10k_rss_mb_nginx": rnd(ng_rss10k, 1),
        "sse_idle_10k_rss_ratio_vs_nginx": rnd(rss_ratio, 2),
        "sse_idle_10k_rss_extrapolated_nginx": ng_extrapolated,
        "sse_nginx_streams_held": ng_held,
        "sse_nginx_streams_still_open_after_hold": ng_still,
        "sse_nginx_rss_before_mb": rnd(ng_before_kb / 1024, 1) if ng_before_kb else None,
        "sse_nginx_rss_held_mb": rnd(ng_held_kb / 1024, 1) if ng_held_kb else None,
        "sse_nginx_rss_per_stream_kb": rnd(ng_per_stream_kb, 2),
        "sse_nginx_fds_held": meta.get("sse_nginx_fds_held"),
        "sse_nginx_workers": meta.get("sse_nginx_workers"),
        "added_p50_us_c1_vs_nginx": gw_p50 - nginx_p50 if gw_p50 is not None and nginx_p50 is not None else None,
        "added_p99_us_c1": (get(configs, "gateway", "c1", "p99_us") - get(configs, "direct", "c1", "p99_us"))
        if get(configs, "gateway", "c1", "p99_us") is not None and get(configs, "direct", "c1", "p99_us") is not None else None,
        "added_p50_us_c1_per_rep": per_rep_delta(configs, "gateway", "direct", "c1", "p50_us"),
        "throughput_ratio_vs_nginx_c64_per_rep": per_rep_ratio(configs, "gateway", "nginx", "c64", "rps"),
        "throughput_ratio_vs_direct_c64": rnd(gw_rps / get(configs, "direct", "c64", "rps"), 3)
        if gw_rps and get(configs, "direct", "c64", "rps") else None,
        "filter_throughput_ratio_vs_nginx_list_c64": rnd(f_rps / nl_rps, 3) if f_rps and nl_rps else None,
        "gateway_rss_idle_mb": rnd(meta.get("gateway_rss_idle_kb", 0) / 1024, 1),
        "gateway_rss_load_mb": rnd(max(load_peaks) / 1024, 1) if load_peaks else None,
        "gateway_rss_after_load_mb": rnd(meta.get("gateway_rss_after_load_kb", 0) / 1024, 1),
        "ttfe_direct_ms": rnd(t_direct, 3),
        "ttfe_gateway_ms": rnd(t_gw, 3),
        "ttfe_samples_per_target": len(ttfe["gateway"]),
        "ttfe_failed": ttfe_fail,
        "configs": configs,
        "mode": meta.get("mode"),
        "date": meta.get("date"),
        "elapsed_s": meta.get("elapsed_s"),
        "build_s": meta.get("build_s"),
        "hardware": f'{meta.get("cpu_model")}, nproc={meta.get("nproc")}, '
                    f'MemTotal={meta.get("mem_total_kb", 0) // 1024} MiB',
        "software": {k: meta.get(k) for k in ("kernel", "nginx", "wrk", "python", "git_rev", "binary_fresh")},
        "background": {k: meta.get(k) for k in ("background_busy_pct", "loadavg_before", "loadavg_after")},
        "settings": {k: meta.get(k) for k in ("duration_s", "reps", "warmup_s", "nofile", "stream_cap_raised", "gateway_workers", "policy_rules",
                                               "list_tools", "list_visible_expected", "list_visible_seen",
                                               "sse_hold_s", "ttfe_samples")},
        "failures": failures,
        "ok": not failures,
    }

    def met(key):
        v = result[key]
        if v is None:
            return None
        t, op, _ = TARGETS[key]
        return {"<=": v <= t, ">=": v >= t, "<": v < t}[op]

    result["targets"] = {k: {"target": f"{op} {t}", "value": result[k], "met": met(k)}
                         for k, (t, op, _) in TARGETS.items()}

    with open(a.json, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(a.md, "w") as f:
        f.write(markdown(result))


def fmt(v, spec="{:,.0f}"):
    return "–" if v is None else spec.format(v)


def markdown(r: dict) -> str:
    s = r["settings"]
    L = [
        "# mcp-auth-gateway benchmark results",
        "",
        f'{r["date"]}, mode `{r["mode"]}` ({s["duration_s"]} s per load run, median of {s["reps"]}, '
        f'{s["warmup_s"]} s warm-up), {r["elapsed_s"]} s in all ({r["build_s"]} s of it building). {r["hardware"]}. '
        f'Gateway worker threads: {s.get("gateway_workers")}. '
        f'nginx {r["software"]["nginx"]}, {r["software"]["wrk"]}, commit {r["software"]["git_rev"]}. '
        f'Before the run the machine was {r["background"]["background_busy_pct"]} % busy with other work '
        f'(load average {r["background"]["loadavg_before"]}; {r["background"]["loadavg_after"]} after). '
        "Load generator, proxies and upstream share the same cores. Produced by `bash bench/run.sh`"
        + (" --smoke" if r["mode"] == "smoke" else "") + "; see bench/README.md.",
        "",
        "## Against the targets",
        "",
        "| metric | value | target | met |",
        "|---|---|---|---|",
    ]
    names = {
        "added_p50_us_c1": "added p50 latency vs direct, c=1 (µs)",
        "throughput_ratio_vs_nginx_c64": "throughput gateway / nginx, c=64",
        "sse_idle_10k_rss_mb": "gateway RSS with 10k idle SSE streams (MB)",
        "ttfe_delta_ms": "time to first SSE event, gateway − direct (ms)",
    }
    for k, t in r["targets"].items():
        v = t["value"]
        note = ""
        if k == "sse_idle_10k_rss_mb" and r["sse_idle_10k_rss_extrapolated"]:
            note = f' (extrapolated from {r["sse_streams_held"]:,} streams)'
        if k == "added_p50_us_c1" and r["added_p50_us_c1_per_rep"]:
            note = f' (per rep: {", ".join(map(str, r["added_p50_us_c1_per_rep"]))})'
        if k == "throughput_ratio_vs_nginx_c64" and r["throughput_ratio_vs_nginx_c64_per_rep"]:
            note = f' (per rep: {", ".join(map(str, r["throughput_ratio_vs_nginx_c64_per_rep"]))})'
        L.append(f'| {names[k]} | {fmt(v, "{}")}{note} | {t["target"]} | '
                 f'{ {True: "yes", False: "**no**", None: "–"}[t["met"]] } |')
        if k == "sse_idle_10k_rss_mb":
            ng_note = f' (extrapolated from {r["sse_nginx_streams_held"]:,} streams)' \
                if r["sse_idle_10k_rss_extrapolated_nginx"] else ""
            L.append(f'| nginx with the same streams (MB; master + workers) | '
                     f'{fmt(r["sse_idle_10k_rss_mb_nginx"], "{}")}{ng_note}, '
                     f'gateway ÷ nginx = {fmt(r["sse_idle_10k_rss_ratio_vs_nginx"], "{}×")} | – | – |')
    L += [
        "",
        "## Load (wrk, fixed POST; c=1 is `-t1 -c1`, c=64 is `-t2 -c64`)",
        "",
        "| configuration | c | p50 µs | p99 µs | req/s (median) | req/s min–max | gateway CPU % | nginx CPU % | wrk CPU % | other CPU % (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_c in r["configs"].items():
        for c, x in by_c.items():
            L.append(f'| {name} | {c[1:]} | {fmt(x["p50_us"])} | {fmt(x["p99_us"])} | {fmt(x["rps"])} | '
                     f'{fmt(x["rps_min"])}–{fmt(x["rps_max"])} | {fmt(x["gateway_cpu_pct"], "{:.0f}")} | '
                     f'{fmt(x["nginx_cpu_pct"], "{:.0f}")} | {fmt(x["wrk_cpu_pct"], "{:.0f}")} | '
                     f'{fmt(x["other_cpu_pct"], "{:.0f}")} ({fmt(x["other_cpu_pct_max"], "{:.0f}")}) |')
    L += [
        "",
        "CPU % is per process over the run (100 % = one core). nginx covers both nginx processes (masters and workers):",
        "the upstream and (for `nginx*` rows) the proxy. *Other* is the machine's busy time minus gateway, nginx",
        "and wrk: work that is not part of the benchmark (noise), median and worst run.",
        "",
        "| configuration | what it measures |",
        "|---|---|",
    ]
    L += [f"| {k} | {v} |" for k, v in DESCRIBE.items() if k in r["configs"]]
    L += [
        "",
        "## Derived",
        "",
        "| number | value |",
        "|---|---|",
        f'| added p50 vs nginx, c=1 | {fmt(r["added_p50_us_c1_vs_nginx"], "{} µs")} |',
        f'| added p99 vs direct, c=1 | {fmt(r["added_p99_us_c1"], "{} µs")} |',
        f'| throughput gateway / direct, c=64 | {fmt(r["throughput_ratio_vs_direct_c64"], "{}")} |',
        f'| throughput gateway+filter / nginx-list, c=64 | {fmt(r["filter_throughput_ratio_vs_nginx_list_c64"], "{}")} |',
        f'| gateway RSS idle / peak under load / after load | {fmt(r["gateway_rss_idle_mb"], "{}")} / '
        f'{fmt(r["gateway_rss_load_mb"], "{}")} / {fmt(r["gateway_rss_after_load_mb"], "{}")} MB |',
        f'| idle SSE streams: requested / attempted / held / still open after {s["sse_hold_s"]} s | '
        f'{fmt(r["sse_streams_requested"])} / {fmt(r["sse_streams_attempted"])} / {fmt(r["sse_streams_held"])} / '
        f'{fmt(r["sse_streams_still_open_after_hold"])} |',
        f'| gateway RSS before / with those streams | {fmt(r["sse_gateway_rss_before_mb"], "{}")} / '
        f'{fmt(r["sse_gateway_rss_held_mb"], "{}")} MB ({fmt(r["sse_gateway_rss_per_stream_kb"], "{}")} kB per stream, '
        f'{fmt(r["sse_gateway_fds_held"])} descriptors) |',
        f'| nginx RSS before / with those streams (master + {fmt(r["sse_nginx_workers"])} workers) | '
        f'{fmt(r["sse_nginx_rss_before_mb"], "{}")} / {fmt(r["sse_nginx_rss_held_mb"], "{}")} MB '
        f'({fmt(r["sse_nginx_rss_per_stream_kb"], "{}")} kB per stream, {fmt(r["sse_nginx_fds_held"])} descriptors; '
        f'{fmt(r["sse_nginx_streams_held"])} held, {fmt(r["sse_nginx_streams_still_open_after_hold"])} still open) |',
        f'| time to first SSE event, direct / gateway (median of {r["ttfe_samples_per_target"]}) | '
        f'{fmt(r["ttfe_direct_ms"], "{}")} / {fmt(r["ttfe_gateway_ms"], "{}")} ms |',
        "",
        "MB here is MiB (VmRSS kB / 1024).",
    ]
    if r["failures"]:
        L += ["", "## Failures", ""] + [f"- {x}" for x in r["failures"]]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
