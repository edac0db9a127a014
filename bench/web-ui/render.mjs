// Web UI rendering benchmark: how much main-thread time the run page spends
// per live update of a large run (500 endpoints, 1,000 workers, a 1-hour
// per-second history in the charts), in headless Debian chromium.
//
//   bash bench/web-ui.sh        (BENCH_WEB_EVENTS=N events, default 30)
//
// A small node HTTP server on 127.0.0.1:0 serves the real assets from
// services/controller/web/assets and the JSON/SSE API of docs/WEB.md with
// generated numbers (this measures the browser side alone; the controller's
// side is measured by the controller benchmarks). Events are sent 4 a second,
// each changing every endpoint's and every worker's numbers. The main-thread
// time (script + style + layout, Chrome's Performance metrics) of each tab
// while it is shown, divided by the events received, is the cost of one
// update; it must stay well under 1,000 ms (one event a second) for the page
// to stay responsive.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "../../services/controller/web/e2e/node_modules/playwright-core/index.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ASSETS = join(ROOT, "services/controller/web/assets");
const ENDPOINTS = 500;
const WORKERS = 1000;
const HISTORY_S = 3600;
const EVENTS = Number(process.env.BENCH_WEB_EVENTS || 30);
const RUN = "00000000-0000-4000-8000-000000000001";

function stat(method, name, seq, i) {
  const wobble = 1 + 0.1 * Math.sin(seq + i);
  return {
    method, name,
    requests: 1000 * seq + i, failures: (seq * i) % 7,
    median_ms: 5 * wobble, p90_ms: 9 * wobble, p95_ms: 12 * wobble, p99_ms: 30 * wobble,
    max_ms: 120 * wobble, min_ms: 1, mean_ms: 6 * wobble, avg_size: 300 + (i % 50),
    rps: 100 * wobble, current_rps: 100 * wobble, current_failures_per_s: (seq % 3) * 0.5,
  };
}

function liveRun(seq) {
  const endpoints = Array.from({ length: ENDPOINTS }, (_, i) => stat("GET", `/api/items/${i}`, seq, i));
  return {
    run_id: RUN, scenario_name: "bench-500-endpoints", host: "http://127.0.0.1:1", state: "running",
    started_at_ms: Date.now() - HISTORY_S * 1000, elapsed_s: HISTORY_S + seq, run_time_s: null,
    target_users: 10000, active_users: 10000, target_rate: 0, workers: WORKERS, error: null,
    current: { rps: 50000, failures_per_s: 1, p50_ms: 5, p95_ms: 12, p99_ms: 30, dropped_per_s: 0 },
    endpoints, total: stat("", "Aggregated", seq, ENDPOINTS),
    failures: Array.from({ length: 50 }, (_, i) => ({ method: "GET", name: `/api/items/${i}`, kind: "status", count: seq * i, last_message: "HTTP 500" })),
    thresholds: [{ expression: "p95 < 150ms", endpoint: null, observed: 12, passed: true }],
    diagnoses: [],
    point: { t_s: HISTORY_S + seq, rps: 50000, failures_per_s: 1, p50_ms: 5, p95_ms: 12, p99_ms: 30, users: 10000, target_users: 10000, target_rate: 0 },
    worker_list: Array.from({ length: WORKERS }, (_, i) => ({
      worker_id: `worker-${String(i).padStart(4, "0")}`, hostname: `pod-${i}`, cores: 2,
      state: (i + seq) % 97 === 0 ? "saturated" : "running", run_id: RUN, users: 10, in_flight: (seq + i) % 10,
      cpu_percent: 50 + ((seq * 7 + i) % 40), rss_bytes: 3e7 + i * 1000, rps: 50 + (seq % 5), last_seen_ms: Date.now(),
    })),
  };
}

const detail = {
  run: { id: RUN, scenario_name: "bench-500-endpoints", host: "http://127.0.0.1:1", status: "running", started_at_ms: Date.now() - HISTORY_S * 1000, ended_at_ms: null, labels: {}, error: null },
  config_json: "{}", scenario_yaml: "", thresholds: [], window: { from_s: 0, to_s: null }, duration_s: HISTORY_S,
  endpoints: [], total: { requests: 0, failures: 0, rps: 0, failure_rate: 0, p50_ms: 0, p90_ms: 0, p95_ms: 0, p99_ms: 0, p999_ms: 0, max_ms: 0 },
  series: Array.from({ length: HISTORY_S }, (_, t) => ({ t_s: t, requests: 50000 + (t % 100), failures: t % 3, p50_ms: 5, p95_ms: 12 + (t % 10), p99_ms: 30 + (t % 20) })),
};

const streams = new Set();
const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const json = (body) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end(await readFile(join(ASSETS, "index.html")));
  }
  if (url.pathname.startsWith("/assets/")) {
    const name = url.pathname.slice("/assets/".length);
    res.writeHead(200, { "content-type": name.endsWith(".css") ? "text/css" : "text/javascript" });
    return res.end(await readFile(join(ASSETS, name)));
  }
  if (url.pathname === "/api/status") return json({ version: "bench", workers: WORKERS, idle_workers: 0, live_runs: [], scenarios: 0, auth: false });
  if (url.pathname === `/api/history/runs/${RUN}`) return json(detail);
  if (url.pathname === `/api/runs/${RUN}/live`) return json(liveRun(0));
  if (url.pathname === `/api/runs/${RUN}/events`) {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    streams.add(res);
    req.on("close", () => streams.delete(res));
    return;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end('{"error":"not found"}');
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({ executablePath: process.env.CICADA_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"], timeout: 30_000 });
const results = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => {
    const { metrics } = await cdp.send("Performance.getMetrics");
    const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
    return { total: (m.ScriptDuration + m.RecalcStyleDuration + m.LayoutDuration) * 1000, script: m.ScriptDuration * 1000, style: m.RecalcStyleDuration * 1000, layout: m.LayoutDuration * 1000 };
  };
  const t0 = Date.now();
  await page.goto(`${base}/#/runs/${RUN}`);
  await page.waitForSelector(`#panel-stats tbody tr:nth-child(${ENDPOINTS})`, { timeout: 30_000 });
  results.push({ what: `first render, ${ENDPOINTS} endpoints (wall)`, ms: Date.now() - t0 });

  let seq = 1;
  for (const tab of ["stats", "workers", "charts"]) {
    await page.click(`#tab-${tab}`);
    await page.waitForTimeout(500);
    const before = await metrics();
    for (let i = 0; i < EVENTS; i++, seq++) {
      const data = JSON.stringify(liveRun(seq));
      for (const s of streams) s.write(`event: progress\ndata: ${data}\n\n`);
      await page.waitForTimeout(250);
    }
    await page.waitForTimeout(500);
    const after = await metrics();
    const per = (k) => (after[k] - before[k]) / EVENTS;
    results.push({ what: `one update, ${tab} tab shown`, ms: per("total"), script_ms: per("script"), style_ms: per("style"), layout_ms: per("layout") });
  }
  const rows = await page.$$eval("#panel-workers tbody tr", (trs) => trs.length);
  if (rows !== WORKERS) throw new Error(`workers table has ${rows} rows, expected ${WORKERS}`);
  // Rows off screen are filled when they scroll into view: the last one
  // shows the last event's numbers.
  await page.click("#tab-workers");
  await page.locator("#panel-workers tbody tr:last-child").scrollIntoViewIfNeeded();
  await page.waitForTimeout(300);
  const last = liveRun(seq - 1).worker_list[WORKERS - 1];
  const cpu = await page.textContent("#panel-workers tbody tr:last-child td:nth-child(6)");
  if (!cpu.startsWith(`${last.cpu_percent}%`)) throw new Error(`last worker row shows CPU ${cpu}, expected ${last.cpu_percent}%`);
} finally {
  await browser.close();
  for (const s of streams) s.end();
  server.close();
}
console.log(`web UI render benchmark: ${ENDPOINTS} endpoints, ${WORKERS} workers, ${HISTORY_S} s of history, ${EVENTS} events per tab`);
for (const r of results) {
  const parts = r.script_ms === undefined ? "" : ` (script ${r.script_ms.toFixed(1)}, style ${r.style_ms.toFixed(1)}, layout ${r.layout_ms.toFixed(1)})`;
  console.log(`  ${r.what.padEnd(40)} ${r.ms.toFixed(1)} ms${parts ? " main thread" + parts : ""}`);
}
console.log(JSON.stringify(results));
