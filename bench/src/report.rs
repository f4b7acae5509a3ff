//! The goals of issue 6 evaluated on the results, and the printed table (same figures as the JSON).

use std::fmt::Write;

use serde_json::{Value, json};

fn by_size<'a>(rows: &'a Value, size: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|r| r["size"] == size)
}

fn goal(measure: &str, goal: &str, value: Option<f64>, unit: &str, met: Option<bool>) -> Value {
    json!({
        "measure": measure,
        "goal": goal,
        "value": value,
        "unit": unit,
        "met": met,
    })
}

/// Evaluates the goals (never enforced: the benchmark reports them).
pub fn goals(r: &Value) -> Value {
    let mut g = Vec::new();
    let cost = &r["cost"];
    let over = &r["overhead"];
    let cpu50 = by_size(cost, "50KB").and_then(|v| v["gateway_cpu_us_per_request"].as_f64());
    g.push(goal(
        "gateway CPU per 50 KB request",
        "≤ 200 µs",
        cpu50,
        "µs",
        cpu50.map(|v| v <= 200.0),
    ));
    let mib4 = by_size(cost, "4MB").and_then(|v| v["gateway_cpu_ms_per_mib"].as_f64());
    g.push(goal(
        "gateway CPU per MiB forwarded (4 MB photos, whole request)",
        "≤ 2 ms",
        mib4,
        "ms",
        mib4.map(|v| v <= 2.0),
    ));
    let marg = r["cpu_marginal_ms_per_mib"].as_f64();
    g.push(goal(
        "gateway CPU per extra MiB (slope 50 KB → 4 MB)",
        "≤ 2 ms",
        marg,
        "ms",
        marg.map(|v| v <= 2.0),
    ));
    let ratios: Vec<f64> = over
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["ratio_b_over_a"].as_f64())
                .collect()
        })
        .unwrap_or_default();
    let n_over = over.as_array().map_or(0, Vec::len);
    let min_ratio = (ratios.len() == n_over && n_over > 0)
        .then(|| ratios.iter().cloned().fold(f64::INFINITY, f64::min));
    g.push(goal(
        "ratio b/a under Graph latency (lowest over sizes)",
        "≥ 0.95 at every size",
        min_ratio,
        "",
        min_ratio.map(|v| v >= 0.95),
    ));
    for (size, limit) in [("50KB", 2.0), ("4MB", 15.0)] {
        let v = by_size(over, size).and_then(|v| v["latency_added_ms"]["p50"].as_f64());
        g.push(goal(
            &format!("latency added at p50, {size}"),
            &format!("≤ {limit} ms"),
            v,
            "ms",
            v.map(|x| x <= limit),
        ));
    }
    let t = &r["token_exchanges"];
    let calls = t["token_endpoint_calls"].as_f64();
    let users = t["users"].as_f64();
    g.push(goal(
        "token-endpoint calls",
        &format!("exactly U = {}", users.unwrap_or(0.0)),
        calls,
        "calls",
        calls.zip(users).map(|(c, u)| c == u),
    ));
    let m = &r["memory"]["during_concurrent_uploads"];
    let peak = m["peak_rss_kib"].as_f64().map(|k| k / 1024.0);
    let budget = m["budget_mib"].as_f64();
    g.push(goal(
        "peak RSS during concurrent uploads",
        &format!(
            "≤ 1.25 × in-flight photo bytes + 40 MB = {:.0} MiB",
            budget.unwrap_or(0.0)
        ),
        peak,
        "MiB",
        peak.zip(budget).map(|(p, b)| p <= b),
    ));
    for row in cost.as_array().into_iter().flatten() {
        let v = row["ratio_b_over_a"].as_f64();
        g.push(goal(
            &format!(
                "ratio b/a with no latency, {}",
                row["size"].as_str().unwrap_or("?")
            ),
            "report (goal to be set)",
            v,
            "",
            None,
        ));
    }
    Value::Array(g)
}

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "—".into(),
    }
}

pub fn table(r: &Value) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    let p = &r["parameters"];
    let _ = writeln!(
        s,
        "\nphoto-gateway benchmark{}",
        if p["smoke"] == true {
            " (SMOKE: tiny counts, timings meaningless)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "machine: {} × {} logical CPUs, {} MiB RAM, kernel {}, {}",
        m["cpu_model"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["ram_mib"],
        m["kernel"].as_str().unwrap_or("?"),
        m["rustc"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "gateway: {} (git {}); concurrency {}, {} users, HTTP/1.1 keep-alive",
        r["gateway"]["version"].as_str().unwrap_or("?"),
        r["gateway"]["git"]["head"]
            .as_str()
            .map(|h| &h[..h.len().min(12)])
            .unwrap_or("?"),
        p["concurrency"],
        p["users"]
    );
    for (title, key) in [
        ("1. cost: emulators with no added latency", "cost"),
        ("2. overhead", "overhead"),
        ("2'. overhead at concurrency 1", "overhead_concurrency_1"),
    ] {
        let title = match key {
            "overhead" => format!(
                "2. overhead: Graph emulator + {} ms latency, concurrency {}",
                p["graph_latency_ms"], p["concurrency"]
            ),
            "overhead_concurrency_1" => format!(
                "2'. overhead: Graph emulator + {} ms latency, concurrency 1 (no contention; information only)",
                p["graph_latency_ms"]
            ),
            _ => title.to_string(),
        };
        let _ = writeln!(
            s,
            "\n{title}  ((a) Graph direct, (b) through the gateway; latencies in ms; cpu a/b: busy cores of the whole machine)"
        );
        let _ = writeln!(
            s,
            "{:<6} {:>6} | {:>8} {:>7} {:>7} | {:>8} {:>7} {:>7} | {:>5} | {:>9} {:>9} | {:>7} {:>7} | {:>5} {:>5}",
            "size",
            "n",
            "a req/s",
            "a p50",
            "a p99",
            "b req/s",
            "b p50",
            "b p99",
            "b/a",
            "gw µs/req",
            "gw ms/MiB",
            "+p50",
            "+p99",
            "cpu a",
            "cpu b"
        );
        for row in r[key].as_array().into_iter().flatten() {
            let a = &row["a_graph_direct"];
            let b = &row["b_through_gateway"];
            let _ = writeln!(
                s,
                "{:<6} {:>6} | {:>8} {:>7} {:>7} | {:>8} {:>7} {:>7} | {:>5} | {:>9} {:>9} | {:>7} {:>7} | {:>5} {:>5}",
                row["size"].as_str().unwrap_or("?"),
                b["requests_ok"],
                f(&a["throughput_rps"], 1),
                f(&a["latency_ms"]["p50"], 2),
                f(&a["latency_ms"]["p99"], 2),
                f(&b["throughput_rps"], 1),
                f(&b["latency_ms"]["p50"], 2),
                f(&b["latency_ms"]["p99"], 2),
                f(&row["ratio_b_over_a"], 3),
                f(&row["gateway_cpu_us_per_request"], 0),
                f(&row["gateway_cpu_ms_per_mib"], 2),
                f(&row["latency_added_ms"]["p50"], 2),
                f(&row["latency_added_ms"]["p99"], 2),
                f(&row["machine_busy_cores"]["a"], 2),
                f(&row["machine_busy_cores"]["b"], 2),
            );
        }
    }
    let _ = writeln!(
        s,
        "gateway CPU per extra MiB (slope 50 KB → 4 MB): {} ms",
        f(&r["cpu_marginal_ms_per_mib"], 2)
    );
    let t = &r["token_exchanges"];
    let _ = writeln!(
        s,
        "\n3. token exchanges: N = {} requests, U = {} users, C = {}: {} token-endpoint calls ({} on-behalf-of), cache hit ratio {}",
        t["requests"],
        t["users"],
        t["concurrency"],
        t["token_endpoint_calls"],
        t["obo_calls"],
        f(&t["cache_hit_ratio"], 4)
    );
    let mem = &r["memory"];
    let d = &mem["during_concurrent_uploads"];
    let mib = |v: &Value| {
        v.as_f64()
            .map(|k| format!("{:.1}", k / 1024.0))
            .unwrap_or_else(|| "—".into())
    };
    let _ = writeln!(
        s,
        "\n4. memory (MiB): idle after start VmRSS {} / VmHWM {}; idle after load VmRSS {}; {} × {} concurrent {}-byte uploads: VmHWM {}, max sampled VmRSS {} ({} samples); budget {}",
        mib(&mem["idle_after_start"]["vmrss_kib"]),
        mib(&mem["idle_after_start"]["vmhwm_kib"]),
        mib(&mem["idle_after_load"]["vmrss_kib"]),
        d["rounds"],
        d["concurrency"],
        d["photo_bytes"],
        mib(&d["vmhwm_kib"]),
        mib(&d["max_sampled_vmrss_kib"]),
        d["samples"],
        f(&d["budget_mib"], 0),
    );
    let st = &r["start_to_ready_ms"];
    let _ = writeln!(
        s,
        "\n5. start to ready (spawn → first 200 on /readyz): median {} ms over {} starts",
        f(&st["median"], 1),
        st["all"].as_array().map_or(0, Vec::len)
    );
    let jwt = &r["jwt_validation_criterion"]["estimates"];
    if jwt.is_object() {
        let _ = writeln!(
            s,
            "   JWT validation (criterion, TokenValidator::validate): v2 token mean {} µs (median {}), v1 token mean {} µs",
            f(&jwt["v2_caller_token"]["mean_us"], 1),
            f(&jwt["v2_caller_token"]["median_us"], 1),
            f(&jwt["v1_caller_token"]["mean_us"], 1),
        );
    } else {
        let _ = writeln!(
            s,
            "   JWT validation (criterion): not run (--smoke or --skip-criterion)"
        );
    }
    s + &goal_lines(&r["goals"])
}

/// The goals, one line each.
pub fn goal_lines(goals: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\ngoals:");
    for g in goals.as_array().into_iter().flatten() {
        let met = match g["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "—",
        };
        let _ = writeln!(
            s,
            "  {:<62} {:>10} {:<5} goal {:<40} {}",
            g["measure"].as_str().unwrap_or(""),
            f(&g["value"], 3),
            g["unit"].as_str().unwrap_or(""),
            g["goal"].as_str().unwrap_or(""),
            met
        );
    }
    s
}

/// The conditions a re-run must match to be compared (machine, build, logging, load).
pub fn conditions(r: &Value) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    let c = &r["conditions"];
    let la = |v: &Value| format!("{} {} {}", f(&v["1m"], 2), f(&v["5m"], 2), f(&v["15m"], 2));
    let _ = writeln!(
        s,
        "\nconditions: {} × {} CPUs, kernel {}, {}; gateway {} build ({}), {} workers; load average (1/5/15 min) before {}, after {}; busy cores in the second before: {}",
        m["cpu_model"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["kernel"].as_str().unwrap_or("?"),
        m["rustc"].as_str().unwrap_or("?"),
        c["gateway_build"]["profile"].as_str().unwrap_or("?"),
        c["gateway_build"]["source"].as_str().unwrap_or("?"),
        c["gateway_workers"],
        la(&c["load_average_before"]),
        la(&c["load_average_after"]),
        f(&m["background_busy_cores_before_run"], 2),
    );
    let _ = writeln!(
        s,
        "  phases 1-5: logs {} ({}), metrics {}, limits {}; phase 8: logs {}, metrics {}, limits {}",
        c["phases_1_to_5"]["log_level"].as_str().unwrap_or("?"),
        c["phases_1_to_5"]["log_format"].as_str().unwrap_or("?"),
        c["phases_1_to_5"]["metrics"].as_str().unwrap_or("?"),
        c["phases_1_to_5"]["limits"].as_str().unwrap_or("?"),
        c["phase_8_forward"]["log_level"].as_str().unwrap_or("?"),
        c["phase_8_forward"]["metrics"].as_str().unwrap_or("?"),
        c["phase_8_forward"]["limits"].as_str().unwrap_or("?"),
    );
    s
}
