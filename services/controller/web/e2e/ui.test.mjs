// Browser end-to-end test of the cicada web UI (issue: web UI).
//
// Starts the real sample target and a real `cicada ui` cluster (collector on
// SQLite, controller, 2 workers) on loopback, then drives headless Debian
// chromium (playwright-core, executablePath /usr/bin/chromium) through the
// UI as a user would: start a run from the form, watch the statistics and
// charts fill, change users live, stop, download the stats CSV and check its
// Aggregated request count equals the stored run and the target's own count,
// browse history, run a second run, compare the two, open the trend, and open
// the downloaded HTML report offline; then upload a scenario file and run it
// in the open model (request rate). The UI runs with a login
// (`--web-auth`): the browser logs in with HTTP credentials, a request
// without them gets 401. Screenshots of every page go to
// target/web-e2e/*.png (1280 px wide, plus phone width 390 px), taken from
// the top of the page so the sticky top bar sits where it belongs.
//
// Binaries come from target/debug (CICADA_BIN_DIR overrides); build them
// first: scripts/test-web.sh does. Every wait is bounded; child processes
// are killed at the end, failed or not.
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const BIN = process.env.CICADA_BIN_DIR || join(ROOT, "target/debug");
const OUT = join(ROOT, "target/web-e2e");
const CHROMIUM = process.env.CICADA_CHROMIUM || "/usr/bin/chromium";
const WHOLE_TEST_TIMEOUT_MS = 300_000;
// The UI's login (`cicada ui --web-auth USER:PASS`); a fresh password per run.
const UI_USER = "e2e";
const UI_PASS = `pw-${process.pid}-${Date.now().toString(36)}`;
const UI_AUTHORIZATION = "Basic " + Buffer.from(`${UI_USER}:${UI_PASS}`).toString("base64");
// The UI's origin once it is up: the test's own requests to it carry the login.
let uiOrigin = null;
const children = [];

function log(...args) {
  console.error("[web-e2e]", ...args);
}

/** Starts a binary; resolves with the first stdout/stderr line matching `pattern`. */
function startProcess(name, args, pattern, timeoutMs) {
  const child = spawn(join(BIN, name), args, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const output = [];
  return new Promise((resolveMatch, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${output.join("")}`)), timeoutMs);
    const onData = (chunk) => {
      const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      output.push(text);
      if (output.length > 400) output.shift();
      if (process.env.CICADA_E2E_VERBOSE) process.stderr.write(`[${name}] ${text}`);
      const m = output.join("").match(pattern);
      if (m) {
        clearTimeout(timer);
        resolveMatch({ child, match: m });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before printing ${pattern}:\n${output.join("")}`));
    });
  });
}

async function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  }
  const deadline = Date.now() + 10_000;
  for (const child of children) {
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

/** Bounded HTTP request from the test itself (not the browser); logged in to the UI. */
async function http(method, url, body) {
  const headers = body ? { "content-type": "application/json" } : {};
  if (uiOrigin && url.startsWith(uiOrigin + "/")) headers.authorization = UI_AUTHORIZATION;
  const response = await fetch(url, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${url}: ${response.status} ${text}`);
  return (response.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
}

/** Polls `fn` until it returns a truthy value (bounded). */
async function until(what, fn, timeoutMs = 30_000, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** A minimal CSV parser (quoted fields, doubled quotes). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

async function shot(page, name) {
  // From the top: a full-page screenshot of a scrolled page draws the sticky
  // top bar at the scroll offset, in the middle of the page.
  await page.evaluate(() => new Promise((done) => {
    window.scrollTo(0, 0);
    requestAnimationFrame(() => requestAnimationFrame(done));
  }));
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  // No rendering slip shows through as text.
  const text = await page.evaluate(() => document.body.innerText);
  const slip = text.match(/\bnull\b|\bundefined\b|\[object |\bNaN\b/);
  assert.equal(slip, null, `page ${name} shows "${slip && slip[0]}" in: ${JSON.stringify(text.slice(Math.max(0, (slip && slip.index) - 120), (slip && slip.index) + 60))}`);
  log("screenshot", `target/web-e2e/${name}.png`);
}

/**
 * Whether each canvas shows drawn series: pixels in a series colour (the
 * grid and the labels are grey, the series saturated).
 */
async function canvasDrawn(page, selector) {
  return page.$$eval(selector, (canvases) =>
    canvases.map((c) => {
      if (!c.width || !c.height) return false;
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let coloured = 0;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 50) coloured++;
      }
      return coloured > 100;
    })
  );
}

/** Fills the start form and starts a run; returns its id. */
async function startRunFromForm(page, ui, { scenario, users, spawnRate, host, runTime, labels, thresholds }) {
  await page.goto(`${ui}/#/new`);
  await page.waitForSelector('#app[data-route="/new"][data-ready="1"]', { state: "attached", timeout: 15_000 });
  const value = await page.$eval("#scenario-pick", (select, name) => [...select.options].find((o) => o.textContent.startsWith(name + " "))?.value, scenario);
  assert.ok(value !== undefined, `scenario ${scenario} is offered by the picker`);
  await page.selectOption("#scenario-pick", value);
  await page.waitForSelector("#scenario-summary .ok", { timeout: 15_000 });
  await page.fill("#users", String(users));
  await page.fill("#spawn-rate", String(spawnRate));
  await page.fill("#host", host);
  await page.fill("#run-time", runTime);
  await page.fill("#labels", labels);
  await page.fill("#thresholds", thresholds);
  return page;
}

async function clickStart(page) {
  await page.click("#start");
  await page.waitForURL(/#\/runs\/[0-9a-f-]{36}/, { timeout: 20_000 });
  return page.url().match(/#\/runs\/([0-9a-f-]{36})/)[1];
}

async function main() {
  await mkdir(OUT, { recursive: true });
  const tmp = await mkdtemp(join(tmpdir(), "cicada-web-e2e-"));
  let browser;
  try {
    // The target: latency so percentiles mean something, failures on one route.
    const { match: targetMatch } = await startProcess(
      "cicada-sample-target",
      ["--listen", "127.0.0.1:0", "--latency", "uniform:2ms..12ms", "--route-error-rate", "GET /Test/V2=0.5", "--threads", "1"],
      /sample target listening.*?addr=(\S+)\s/,
      20_000
    );
    const target = `http://${targetMatch[1]}`;
    log("target", target);

    const scenarios = join(tmp, "scenarios");
    await mkdir(scenarios);
    const yaml = (name) => `# e2e: weighted reads with a short wait between requests
name: ${name}
host: ${target}
users:
  - name: reader
    wait: { between: [20ms, 60ms] }
    tasks:
      - weight: 60
        request: { method: GET, path: /Test/V1, check: [{ body_contains: ok }] }
      - weight: 4
        request: { method: GET, path: /Test/V2 }
      - weight: 14
        request: { method: GET, path: /Test/V3 }
      - weight: 5
        request: { method: GET, path: /Test/V4 }
`;
    await writeFile(join(scenarios, "web-e2e.yaml"), yaml("web-e2e"));
    await writeFile(join(scenarios, "other.yml"), yaml("other"));

    const { match: uiMatch } = await startProcess(
      "cicada",
      ["ui", "--workers", "2", "--database-url", `sqlite://${join(tmp, "cicada.db")}`, "--web-listen", "127.0.0.1:0", "--scenarios", scenarios, "--web-auth", `${UI_USER}:${UI_PASS}`],
      /web UI: (http:\/\/\S+)\r?\n/,
      60_000
    );
    const ui = uiMatch[1].replace(/\/$/, "");
    log("ui", ui);
    uiOrigin = new URL(ui).origin;

    // --- Login: without it (or with a wrong password) 401 and a Basic
    // challenge; /health stays open; with it the API answers.
    for (const [what, authorization] of [
      ["no credentials", null],
      ["a wrong password", "Basic " + Buffer.from(`${UI_USER}:wrong`).toString("base64")],
    ]) {
      const response = await fetch(`${ui}/api/status`, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(10_000) });
      await response.text();
      assert.equal(response.status, 401, `/api/status with ${what}`);
      assert.match(response.headers.get("www-authenticate") || "", /^Basic realm="cicada"/, `/api/status with ${what}: Basic challenge`);
    }
    const health = await fetch(`${ui}/health`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200, "/health needs no login");
    assert.equal(await health.text(), "ok");
    assert.equal((await http("GET", `${ui}/api/status`)).auth, true, "/api/status says the UI has a login");
    await until("2 workers connected", async () => (await http("GET", `${ui}/api/status`)).workers >= 2, 30_000);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"], timeout: 30_000 });
    // A browser without the login does not get the UI: chromium (driven by
    // playwright, which cancels the login dialog) fails the navigation on the
    // 401 challenge; a plain 401 page would do as well.
    const stranger = await browser.newContext();
    const refused = await (await stranger.newPage()).goto(`${ui}/#/`, { timeout: 15_000 }).then(
      (response) => `HTTP ${response.status()}`,
      (e) => e.message
    );
    assert.match(refused, /^HTTP 401$|ERR_INVALID_AUTH_CREDENTIALS/, "the UI without a login");
    await stranger.close();
    const httpCredentials = { username: UI_USER, password: UI_PASS };
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, deviceScaleFactor: 1, httpCredentials });
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && pageErrors.push(m.text()));

    // --- Start form: live validation with line/column, then a real run.
    await page.goto(`${ui}/#/`);
    await page.waitForSelector("#start-form");
    await page.waitForSelector("#scenario-summary .ok", { timeout: 15_000 });
    await page.fill("#scenario-yaml", "name: broken\nhost: http://127.0.0.1:1\nusers:\n  - name: x\n    wiat: none\n");
    await page.waitForSelector(".editor-error:not([hidden])", { timeout: 10_000 });
    const errorText = await page.textContent(".editor-error");
    assert.match(errorText, /line \d+/, "the validation error names a line");
    assert.ok(await page.$(".editor-gutter .bad"), "the error line is highlighted");
    await shot(page, "start-invalid");

    await page.fill("#scenario-yaml", ""); // the picker below reloads the text
    await http("POST", `${target}/stats/reset`);
    await startRunFromForm(page, ui, {
      scenario: "web-e2e",
      users: 4,
      spawnRate: 4,
      host: target,
      runTime: "",
      labels: "build=a, e2e=1",
      thresholds: "p95 < 5000ms\nfailure_rate < 1%",
    });
    await shot(page, "start");
    const runA = await clickStart(page);
    log("run A", runA);

    // --- Live statistics fill.
    await page.waitForSelector("#panel-stats tbody tr:nth-child(4)", { timeout: 30_000 });
    await until("the Aggregated row counts requests", async () => {
      const text = await page.textContent("#panel-stats tfoot tr td:nth-child(3)");
      return Number(text.replace(/,/g, "")) > 50;
    });
    const rows = await page.$$eval("#panel-stats tbody tr", (trs) => trs.map((tr) => tr.children[1].textContent));
    assert.deepEqual([...rows].sort(), ["/Test/V1", "/Test/V2", "/Test/V3", "/Test/V4"]);
    // Sorting by a header click reorders the rows by that column.
    await page.click("#panel-stats th:nth-child(3)");
    const sorted = await page.$$eval("#panel-stats tbody tr", (trs) => trs.map((tr) => Number(tr.children[2].textContent.replace(/,/g, ""))));
    assert.deepEqual(sorted, [...sorted].sort((a, b) => b - a), "sorted by # Requests, descending");
    await shot(page, "run-statistics");

    // --- Charts draw (whole-run series + SSE points).
    await page.click("#tab-charts");
    await until("three charts with points and ink", async () => {
      const points = await page.$$eval("#panel-charts canvas", (cs) => cs.map((c) => Number(c.dataset.points || 0)));
      const drawn = await canvasDrawn(page, "#panel-charts canvas");
      return points.length === 3 && points.every((n) => n >= 5) && drawn.every(Boolean);
    }, 30_000);
    // Hover shows the values.
    const box = await page.locator("#panel-charts canvas").first().boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await page.waitForSelector("#panel-charts .chart-tooltip:not([hidden])");
    assert.match(await page.textContent("#panel-charts .chart-tooltip"), /RPS/);
    await shot(page, "run-charts");

    // --- Change users live.
    await page.fill("#scale-value", "6");
    await page.click("#scale");
    await until("target users 6 in the header", async () => /\/ 6$/.test((await page.textContent("#kpi-users")).trim()), 20_000);
    await until("6 active users", async () => (await http("GET", `${ui}/api/runs/${runA}/live`)).active_users === 6, 20_000);
    await page.click("#tab-workers");
    await page.waitForSelector("#panel-workers tbody tr:nth-child(2)");
    assert.match(await page.textContent("#panel-workers thead"), /Req\/CPU-s/, "the workers' measured speed has a column");
    await shot(page, "run-workers");
    await page.click("#tab-failures");
    await page.waitForSelector("#panel-failures tbody tr:not(.empty)", { timeout: 20_000 });
    await shot(page, "run-failures");
    await page.click("#tab-checks");
    // The response check's counts come with every update.
    await page.waitForSelector("#panel-checks table.response-checks tbody tr.pass", { timeout: 20_000 });
    const checkRow = await page.textContent("#panel-checks table.response-checks tbody tr");
    assert.match(checkRow, /body contains "ok"/, "the check is listed by name");
    assert.match(checkRow, /GET \/Test\/V1/, "with its endpoint");
    await shot(page, "run-thresholds");

    // --- Stop, then the run is stored as ended.
    await page.click("#stop");
    await page.waitForSelector(".run-title-row .status-finished, .run-title-row .status-failed", { timeout: 60_000 });
    const storedA = await until("run A stored as ended", async () => {
      const d = await http("GET", `${ui}/api/history/runs/${runA}`);
      return d.run.ended_at_ms ? d : null;
    });
    const servedA = (await http("GET", `${target}/stats`)).total;

    // --- Downloads: the stats CSV's Aggregated count equals stored and served.
    await page.click("#tab-downloads");
    await shot(page, "run-downloads");
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 20_000 }), page.click('a[data-download="stats.csv"]')]);
    const csvPath = join(OUT, "stats.csv");
    await download.saveAs(csvPath);
    const csv = parseCsv(await readFile(csvPath, "utf8"));
    const header = csv[0];
    const countAt = header.indexOf("Request Count");
    const nameAt = header.indexOf("Name");
    assert.ok(countAt >= 0 && nameAt >= 0, `stats CSV header: ${header}`);
    const aggregated = csv.find((r) => r[nameAt] === "Aggregated");
    assert.ok(aggregated, "the stats CSV has an Aggregated row");
    const csvCount = Number(aggregated[countAt]);
    log(`run A: CSV Aggregated ${csvCount}, stored ${storedA.total.requests}, target served ${servedA}`);
    assert.ok(csvCount > 0);
    assert.equal(csvCount, storedA.total.requests, "stats CSV Aggregated == stored run total");
    assert.equal(csvCount, servedA, "stats CSV Aggregated == the target's own count");
    const perEndpoint = csv.slice(1).filter((r) => r.length > countAt && r[nameAt] !== "Aggregated" && r[nameAt] !== "");
    assert.equal(perEndpoint.reduce((s, r) => s + Number(r[countAt]), 0), csvCount, "endpoint rows sum to Aggregated");

    // The HTML report renders offline (every network request refused).
    const [reportDownload] = await Promise.all([page.waitForEvent("download", { timeout: 20_000 }), page.click('a[data-download="report.html"]')]);
    const reportPath = join(OUT, "report.html");
    await reportDownload.saveAs(reportPath);
    const offline = await context.newPage();
    await offline.route(/^https?:/, (r) => r.abort());
    await offline.goto("file://" + reportPath);
    await offline.waitForSelector("#panel-stats tfoot tr td:nth-child(3)");
    assert.equal(Number((await offline.textContent("#panel-stats tfoot tr td:nth-child(3)")).replace(/,/g, "")), csvCount, "the offline report shows the same total");
    await offline.click("#tab-charts");
    await until("report charts drawn", async () => (await canvasDrawn(offline, "#panel-charts canvas")).slice(0, 2).every(Boolean), 10_000);
    await shot(offline, "report-offline");
    await offline.close();

    // --- History lists the run.
    await page.click('nav a[data-nav="history"]');
    await page.waitForSelector(`.history a[href="#/runs/${runA}"]`);
    await shot(page, "history");

    // --- A second, short run (run time 4s) from the form.
    await http("POST", `${target}/stats/reset`);
    await startRunFromForm(page, ui, { scenario: "web-e2e", users: 3, spawnRate: 3, host: target, runTime: "4s", labels: "build=b, e2e=1", thresholds: "" });
    const runB = await clickStart(page);
    log("run B", runB);
    await page.waitForSelector(".run-title-row .status-finished, .run-title-row .status-failed", { timeout: 60_000 });
    const storedB = await until("run B stored as ended", async () => {
      const d = await http("GET", `${ui}/api/history/runs/${runB}`);
      return d.run.ended_at_ms ? d : null;
    });
    const servedB = (await http("GET", `${target}/stats`)).total;
    assert.equal(storedB.total.requests, servedB, "run B: stored == served");
    assert.equal(storedB.run.status, "finished");
    await page.click("#tab-charts");
    await until("run B charts from stored data", async () => (await canvasDrawn(page, "#panel-charts canvas")).slice(0, 2).every(Boolean), 15_000);
    await shot(page, "run-finished-charts");

    // --- Compare the two runs from History.
    await page.goto(`${ui}/#/history?label=e2e%3D1`);
    await page.waitForSelector(`.history a[href="#/runs/${runB}"]`);
    assert.equal(await page.$$eval(".history tbody tr", (trs) => trs.length), 2, "the label filter keeps both runs");
    await page.check(`input.pick[value="${runA}"]`);
    await page.check(`input.pick[value="${runB}"]`);
    await page.click("#compare");
    await page.waitForSelector("#verdict");
    assert.ok(page.url().includes(`a=${runA}`) && page.url().includes(`b=${runB}`), "A is the older run");
    assert.ok((await page.$$("table.compare tbody tr")).length >= 5, "total metrics compared");
    await shot(page, "compare");
    // Window and tolerance inputs re-query.
    await page.fill("#cmp-from", "1");
    await page.fill("#cmp-to", "3");
    await page.fill("#cmp-tolerance", "10%");
    await page.click("form.filters button[type=submit]");
    await page.waitForFunction(() => location.hash.includes("tolerance=10"));
    await page.waitForSelector("#verdict");
    assert.match(await page.textContent("#verdict"), /10\.0%.*seconds 1 to 3/);

    // --- Trend of p95 across the runs of the scenario.
    await page.goto(`${ui}/#/trend?scenario=web-e2e&metric=p95&endpoint=total&last=30`);
    await page.waitForSelector("table.trend tbody tr:nth-child(2)");
    let trendState = null;
    await until(
      "trend chart drawn with both runs",
      async () => {
        trendState = { drawn: await canvasDrawn(page, ".card canvas"), points: await page.$eval(".card canvas", (c) => Number(c.dataset.points)) };
        return trendState.drawn.every(Boolean) && trendState.points === 2;
      },
      10_000
    ).catch(async (e) => {
      await shot(page, "trend-failed");
      throw new Error(`${e.message}; chart: ${JSON.stringify(trendState)}`);
    });
    await shot(page, "trend");

    // --- Upload a scenario file, then run it in the open model (40 requests/s, 4 s).
    const uploaded = join(tmp, "open-upload.yaml");
    const uploadedYaml = yaml("web-e2e-open").replace("# e2e: weighted reads", "# e2e (uploaded): weighted reads");
    await writeFile(uploaded, uploadedYaml);
    await page.goto(`${ui}/#/new`);
    await page.waitForSelector('#app[data-route="/new"][data-ready="1"]', { state: "attached", timeout: 15_000 });
    await page.waitForSelector("#scenario-summary .ok", { timeout: 15_000 }); // the picker's first file
    await page.setInputFiles("#scenario-file", uploaded);
    await until("the uploaded file in the editor, validated", async () => {
      const summary = await page.textContent("#scenario-summary");
      return (await page.inputValue("#scenario-yaml")) === uploadedYaml && /✓ valid\s*web-e2e-open\b/.test(summary) && summary;
    }, 15_000);
    assert.equal(await page.inputValue("#scenario-pick"), "", "an upload clears the picked file");
    assert.ok(await page.isHidden(".editor-error"), "no validation error for the uploaded file");
    assert.ok(await page.isHidden(".open-fields"), "closed model until picked");
    await page.check("#model-open");
    assert.ok((await page.isVisible("#rate")) && (await page.isHidden("#users")), "the open model asks for a rate, not users");
    await page.fill("#rate", "40");
    await page.fill("#host", target);
    await page.fill("#run-time", "4s");
    await page.fill("#labels", "model=open");
    await shot(page, "start-upload-open");
    await http("POST", `${target}/stats/reset`);
    const runC = await clickStart(page);
    log("run C (uploaded, open model)", runC);
    await until("the header shows the target rate", async () => /\(rate 40\/s\)/.test(await page.textContent("#kpi-users")), 20_000);
    await page.waitForSelector(".run-title-row .status-finished, .run-title-row .status-failed", { timeout: 60_000 });
    await shot(page, "run-open-model");
    const liveC = await http("GET", `${ui}/api/runs/${runC}/live`);
    assert.equal(liveC.target_rate, 40, "the live view's target rate");
    assert.equal(liveC.scenario_name, "web-e2e-open");
    const storedC = await until("run C stored as ended", async () => {
      const d = await http("GET", `${ui}/api/history/runs/${runC}`);
      return d.run.ended_at_ms ? d : null;
    });
    const servedC = (await http("GET", `${target}/stats`)).total;
    const configC = JSON.parse(storedC.config_json);
    log(`run C: stored ${storedC.total.requests}, target served ${servedC}, over ${storedC.duration_s} s, config ${JSON.stringify({ model: configC.model, rate: configC.rate, workers: configC.workers.map((w) => w.rate) })}`);
    assert.equal(storedC.run.status, "finished");
    assert.equal(storedC.scenario_yaml, uploadedYaml, "the stored scenario is the uploaded file");
    assert.equal(configC.model, "open");
    assert.equal(configC.rate, 40, "the stored run's rate");
    assert.equal(configC.workers.reduce((s, w) => s + w.rate, 0), 40, "the workers' rates add up to the target rate");
    // The open model's point: rate x run time requests (160), whatever the
    // latency; a wide band, the scheduling on a busy CI machine being what it is.
    assert.ok(storedC.total.requests > 0.6 * 40 * 4 && storedC.total.requests <= 1.25 * 40 * 4, `run C: ${storedC.total.requests} requests at 40/s for 4 s`);
    assert.equal(storedC.total.requests, servedC, "run C: stored == served");

    // --- Phone width.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, httpCredentials });
    const p = await phone.newPage();
    await p.goto(`${ui}/#/runs/${runA}`);
    await p.waitForSelector("#panel-stats tfoot tr");
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the phone page does not scroll sideways (${overflow} px too wide)`);
    await shot(p, "phone-run");
    await p.goto(`${ui}/#/new`);
    await p.waitForSelector("#scenario-summary .ok");
    await shot(p, "phone-start");
    await phone.close();

    assert.deepEqual(pageErrors, [], "no JavaScript errors in the pages");
    log("ok: all checks passed");
  } finally {
    if (browser) await browser.close().catch(() => {});
    await killAll();
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

const watchdog = setTimeout(async () => {
  log(`the whole test exceeded ${WHOLE_TEST_TIMEOUT_MS} ms; killing its processes`);
  await killAll();
  process.exit(1);
}, WHOLE_TEST_TIMEOUT_MS);

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  async (e) => {
    log("FAILED:", e && e.stack ? e.stack : e);
    await killAll();
    clearTimeout(watchdog);
    process.exit(1);
  }
);
