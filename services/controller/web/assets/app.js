// cicada web UI: a single page with hash routes (docs/WEB.md).
//
//   #/                 start form, or the live run when one is running
//   #/new              start form
//   #/runs/ID          a run: live over server-sent events while it runs,
//                      from stored data after (same page, same charts)
//   #/history?...      stored runs; pick two to compare
//   #/compare?a=&b=    side by side, deltas and regression flags
//   #/trend?...        one metric across the runs of a scenario
//
// With `window.CICADA_REPORT` set (the self-contained HTML report) the run
// page is rendered from that JSON and nothing is fetched.
//
// Large runs (500 endpoints, 1,000 workers) stay responsive: table rows are
// built once per key and then only their changed cells' text is set; events
// are coalesced so at most one render happens per animation frame, and only
// the visible tab is rendered (the others are marked stale).
"use strict";

(function () {
  const REPORT = window.CICADA_REPORT || null;
  const app = document.getElementById("app");
  let cleanup = null; // the current page's teardown (EventSource, timers)

  // ---------------------------------------------------------------- helpers

  /** `h("td#id.num.other", {title: "x"}, "text", child)`: an element. */
  function h(tag, attrs, ...children) {
    const [head, ...classes] = tag.split(".");
    const [name, id] = head.split("#");
    const el = document.createElement(name);
    if (id) el.id = id;
    if (classes.length) el.className = classes.join(" ");
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.assign(el.dataset, v);
        else if (k in el && k !== "list" && k !== "form") el[k] = v;
        else el.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** `parent.append(...)` without the null/false placeholders of optional parts. */
  function put(parent, ...children) {
    parent.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  const nf = new Intl.NumberFormat("en-US");
  // Intl formatters are costly to create: one per number of decimals (a
  // table of 500 endpoints formats 7,000 numbers per update).
  const fixedFormats = [];
  function fixedFormat(digits) {
    if (!fixedFormats[digits]) fixedFormats[digits] = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return fixedFormats[digits];
  }
  function fmtInt(v) {
    return v === null || v === undefined ? "–" : nf.format(Math.round(v));
  }
  function fmtNum(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) : digits;
    return fixedFormat(d).format(v);
  }
  function fmtMs(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Math.abs(v) >= 100 ? nf.format(Math.round(v)) : fmtNum(v, Math.abs(v) >= 10 ? 1 : 2);
  }
  function fmtPct(fraction) {
    if (fraction === null || fraction === undefined || !isFinite(fraction)) return "–";
    return fmtNum(fraction * 100, 2) + "%";
  }
  function fmtBytes(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? Math.round(v) : fmtNum(v, v >= 100 ? 0 : 1)) + " " + units[i];
  }
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  }
  function fmtTime(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  /** Run ids are UUIDv7 (time first): runs started together share their
   *  first digits, so the short form keeps both ends. */
  function shortId(id) {
    const s = String(id || "");
    return s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
  }
  function labelsText(labels) {
    return Object.entries(labels || {})
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
  }
  function statusBadge(status) {
    return h("span.badge.status-" + String(status || "unknown").replace(/[^a-z_]/g, ""), null, status || "unknown");
  }

  /** A `#/path?query` hash as `{path, params}`. */
  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?");
    return { path, params: new URLSearchParams(query || "") };
  }
  function hashFor(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
    const s = q.toString();
    return "#" + path + (s ? "?" + s : "");
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /** JSON API call; 401 shows the sign-in notice; errors carry `{error, line, column}`. */
  async function api(method, path, body) {
    const init = { method, headers: { accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: `the controller is unreachable (${e.message})` });
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = { error: text.slice(0, 300) };
    }
    if (response.status === 401) showAuthNotice();
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }

  function showAuthNotice() {
    const notice = document.getElementById("notice");
    notice.hidden = false;
    notice.replaceChildren(
      "Sign-in required: this controller was started with --web-auth. ",
      h("a", { href: location.href, onclick: () => location.reload() }, "Reload to sign in"),
      "."
    );
  }

  function errorBox(error) {
    return h("div.error-box", { role: "alert" }, error instanceof Error ? error.message : String(error));
  }

  /** Calls `fn` at most once per animation frame. */
  function coalesce(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        fn();
      });
    };
  }

  /**
   * A table whose rows are keyed: `update(items)` creates a row the first
   * time a key is seen, then only sets cells whose text changed, and only in
   * rows on screen: the others keep their latest item and are filled when
   * they scroll into view (an IntersectionObserver), so an update of 1,000
   * rows lays out the few dozen visible ones. Clicking a header sorts (again:
   * reverses). Rows are re-appended only when the order changed.
   */
  class KeyedTable {
    constructor(columns, options) {
      this.columns = columns; // [{title, value: item => any, text: item => string, num: bool, cls: item => string}]
      this.options = options || {};
      this.rows = new Map();
      this.order = [];
      this.sort = this.options.sort || null; // {index, desc}
      this.items = [];
      const headRow = h("tr");
      this.heads = columns.map((c, i) => {
        const th = h("th" + (c.num ? ".num" : ""), { scope: "col", title: c.help || null }, c.title);
        if (this.options.sortable !== false && c.value) {
          th.classList.add("sortable");
          th.addEventListener("click", () => {
            const desc = this.sort && this.sort.index === i ? !this.sort.desc : !!c.num;
            this.sort = { index: i, desc };
            this.update(this.items, this.footItem);
          });
        }
        headRow.appendChild(th);
        return th;
      });
      this.tbody = h("tbody");
      this.tfoot = h("tfoot");
      this.empty = h("tr.empty", null, h("td", { colSpan: columns.length }, this.options.emptyText || "nothing yet"));
      this.table = h("table.data" + (this.options.cls ? "." + this.options.cls : ""), null, h("thead", null, headRow), this.tbody, this.tfoot);
      this.element = h("div.table-scroll", null, this.table);
      this.visible = new Set();
      this.observer = window.IntersectionObserver
        ? new IntersectionObserver(
            (entries) => {
              for (const e of entries) {
                const row = e.target._row;
                if (!row) continue;
                if (e.isIntersecting) {
                  this.visible.add(row);
                  if (row.dirty) this.fill(row, row.item);
                } else this.visible.delete(row);
              }
            },
            { rootMargin: "200px 0px" }
          )
        : null;
    }

    destroy() {
      if (this.observer) this.observer.disconnect();
    }

    makeRow(item) {
      const cells = this.columns.map((c) => h("td" + (c.num ? ".num" : "")));
      const tr = h("tr", null, cells);
      const row = { tr, cells, texts: cells.map(() => null), cls: null, item, dirty: false };
      tr._row = row;
      return row;
    }

    fill(row, item) {
      row.item = item;
      row.dirty = false;
      this.columns.forEach((c, i) => {
        if (c.render) {
          if (row.texts[i] === null) {
            row.cells[i].replaceChildren(c.render(item));
            row.texts[i] = "";
          }
          return;
        }
        const text = c.text ? c.text(item) : String(c.value(item) ?? "");
        if (row.texts[i] !== text) {
          row.cells[i].textContent = text;
          row.texts[i] = text;
        }
      });
      const cls = this.options.rowClass ? this.options.rowClass(item) : "";
      if (row.cls !== cls) {
        row.tr.className = cls;
        row.cls = cls;
      }
    }

    update(items, footItem) {
      this.items = items;
      this.footItem = footItem;
      const seen = new Set();
      const keyed = items.map((item) => {
        const key = this.options.key(item);
        seen.add(key);
        let row = this.rows.get(key);
        if (!row) {
          row = this.makeRow(item);
          this.rows.set(key, row);
          this.fill(row, item);
          if (this.observer) this.observer.observe(row.tr);
        } else if (!this.observer || this.visible.has(row)) {
          this.fill(row, item);
        } else {
          row.item = item;
          row.dirty = true;
        }
        return { key, item, row };
      });
      for (const [key, row] of this.rows) {
        if (!seen.has(key)) {
          row.tr.remove();
          if (this.observer) this.observer.unobserve(row.tr);
          this.visible.delete(row);
          this.rows.delete(key);
        }
      }
      if (this.sort) {
        const col = this.columns[this.sort.index];
        const dir = this.sort.desc ? -1 : 1;
        keyed.sort((a, b) => {
          const x = col.value(a.item);
          const y = col.value(b.item);
          if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
          return String(x).localeCompare(String(y)) * dir;
        });
        this.heads.forEach((th, i) => {
          th.classList.toggle("sorted-asc", i === this.sort.index && !this.sort.desc);
          th.classList.toggle("sorted-desc", i === this.sort.index && this.sort.desc);
        });
      }
      const order = keyed.map((k) => k.key);
      const same = order.length === this.order.length && order.every((k, i) => k === this.order[i]);
      if (!same) {
        const fragment = document.createDocumentFragment();
        for (const k of keyed) fragment.appendChild(k.row.tr);
        this.tbody.replaceChildren(fragment);
        this.order = order;
      }
      if (items.length === 0 && !this.empty.isConnected) this.tbody.replaceChildren(this.empty);
      if (footItem) {
        if (!this.footRow) {
          this.footRow = this.makeRow(footItem);
          this.tfoot.appendChild(this.footRow.tr);
        }
        this.fill(this.footRow, footItem);
      }
    }
  }

  // ------------------------------------------------------------------ shell

  function renderShell() {
    const nav = REPORT
      ? h("nav", null, h("span.nav-note", null, "Report generated by cicada"))
      : h(
          "nav",
          null,
          h("a", { href: "#/new", dataset: { nav: "new" } }, "New run"),
          h("a", { href: "#/history", dataset: { nav: "history" } }, "History"),
          h("a", { href: "#/trend", dataset: { nav: "trend" } }, "Trend")
        );
    const header = h(
      "header.topbar",
      null,
      h("a.brand", { href: REPORT ? null : "#/" }, h("span.brand-mark", null, "◆"), "cicada"),
      nav,
      h("span#cluster.cluster", null)
    );
    const notice = h("div#notice.notice", { hidden: true });
    document.body.prepend(header, notice);
  }

  function setNav(active) {
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === active));
  }

  async function refreshCluster() {
    try {
      const status = await api("GET", "/api/status");
      const el = document.getElementById("cluster");
      el.textContent = `${status.workers} worker${status.workers === 1 ? "" : "s"} · ${status.idle_workers} idle`;
      el.title = `cicada ${status.version}`;
      return status;
    } catch (_) {
      return null;
    }
  }

  async function route() {
    if (cleanup) {
      try {
        cleanup();
      } catch (_) {
        /* a page's teardown must not block the next page */
      }
      cleanup = null;
    }
    const { path, params } = parseHash();
    const page = h("div.page");
    // data-ready tells scripts (and the browser test) the page is built.
    app.dataset.route = path;
    app.dataset.ready = "0";
    app.replaceChildren(page);
    window.scrollTo(0, 0);
    try {
      let m;
      if (path === "/" || path === "") {
        setNav("new");
        const status = await refreshCluster();
        const live = status && status.live_runs && status.live_runs[0];
        if (live) {
          location.replace(hashFor("/runs/" + (live.run_id || live.id)));
          return;
        }
        await startPage(page, status);
      } else if (path === "/new") {
        setNav("new");
        await startPage(page, await refreshCluster());
      } else if ((m = path.match(/^\/runs\/([^/]+)$/))) {
        setNav("");
        refreshCluster();
        await runPage(page, decodeURIComponent(m[1]), params);
      } else if (path === "/history") {
        setNav("history");
        refreshCluster();
        await historyPage(page, params);
      } else if (path === "/compare") {
        setNav("history");
        await comparePage(page, params);
      } else if (path === "/trend") {
        setNav("trend");
        await trendPage(page, params);
      } else {
        page.appendChild(errorBox(`no page ${path}: try #/ (start), #/history or #/trend`));
      }
    } catch (e) {
      page.appendChild(errorBox(e));
    }
    if (app.dataset.route === path && app.contains(page)) app.dataset.ready = "1";
  }

  // ------------------------------------------------------------- start form

  async function startPage(page, status) {
    document.title = "cicada · new run";
    let scenarios = [];
    let loadError = null;
    try {
      scenarios = await api("GET", "/api/scenarios");
    } catch (e) {
      loadError = e;
    }

    const picker = h(
      "select#scenario-pick",
      { name: "scenario" },
      h("option", { value: "" }, scenarios.length ? "— paste or upload YAML —" : "— no scenario files; paste or upload YAML —"),
      scenarios.map((s, i) => h("option", { value: String(i) }, `${s.name} (${s.path})`))
    );
    const upload = h("input#scenario-file", { type: "file", accept: ".yaml,.yml,text/yaml" });
    const editor = new YamlEditor();
    const summary = h("div.scenario-summary", { id: "scenario-summary" });

    const modelClosed = h("input", { type: "radio", name: "model", value: "closed", checked: true, id: "model-closed" });
    const modelOpen = h("input", { type: "radio", name: "model", value: "open", id: "model-open" });
    const users = h("input#users", { type: "number", min: "1", step: "1", value: "10", required: true });
    const spawnRate = h("input#spawn-rate", { type: "number", min: "0.1", step: "any", value: "5", required: true });
    const rate = h("input#rate", { type: "number", min: "0.1", step: "any", value: "100" });
    const maxInFlight = h("input#max-in-flight", { type: "number", min: "0", step: "1", value: "0" });
    const host = h("input#host", { type: "url", placeholder: "from the scenario", autocomplete: "url" });
    const runTime = h("input#run-time", { type: "text", placeholder: "e.g. 30s, 5m, 1h30m; empty = until stopped", pattern: "^\\s*([0-9]+(\\.[0-9]+)?\\s*(ms|s|m|h)\\s*)*$" });
    const labels = h("input#labels", { type: "text", placeholder: "release=1.2, env=staging" });
    const thresholds = h("textarea#thresholds", { rows: 4, placeholder: "one per line, e.g.\np95 < 150ms\nfailure_rate < 1%\nGET /Test/V1: p99 < 300ms", spellcheck: false });
    const startButton = h("button#start.primary", { type: "submit" }, "Start");
    const formError = h("div.form-error", { role: "alert" });

    const closedFields = h(
      "div.fields.closed-fields",
      null,
      field("Number of users (peak concurrency)", users),
      field("Ramp up (users started/second)", spawnRate)
    );
    const openFields = h(
      "div.fields.open-fields",
      { hidden: true },
      field("Target rate (requests/second)", rate),
      field("Max in flight (0 = no limit)", maxInFlight)
    );
    const syncModel = () => {
      const open = modelOpen.checked;
      openFields.hidden = !open;
      closedFields.hidden = open;
      rate.required = open;
      users.required = !open;
      spawnRate.required = !open;
    };
    modelClosed.addEventListener("change", syncModel);
    modelOpen.addEventListener("change", syncModel);

    let validated = null;
    let validateSeq = 0;
    const validate = async () => {
      const seq = ++validateSeq;
      const yaml = editor.value;
      if (!yaml.trim()) {
        editor.setError(null);
        summary.replaceChildren(h("span.muted", null, "Pick a scenario, paste its YAML or upload a file."));
        validated = null;
        return;
      }
      const path = picker.value !== "" ? scenarios[+picker.value].path : "pasted.yaml";
      try {
        const v = await api("POST", "/api/scenarios/validate", { yaml, path });
        if (seq !== validateSeq) return;
        validated = v;
        editor.setError(null);
        host.placeholder = v.host || "http://…";
        if (v.rate && !rate.dataset.touched) {
          // The scenario declares the open model: start with its rate.
          rate.value = v.rate;
          modelOpen.checked = true;
          syncModel();
        }
        summary.replaceChildren(
          h("span.ok", null, "✓ valid"),
          " ",
          h("b", null, v.name),
          ` · ${v.endpoints.length} endpoint${v.endpoints.length === 1 ? "" : "s"}`,
          ` · users: ${v.users.map((u) => `${u.name} (weight ${u.weight})`).join(", ") || "–"}`,
          v.rate ? ` · rate ${v.rate}/s` : "",
          v.thresholds ? ` · ${v.thresholds} threshold${v.thresholds === 1 ? "" : "s"}` : ""
        );
      } catch (e) {
        if (seq !== validateSeq) return;
        validated = null;
        editor.setError(e.body && e.body.line ? e.body : { error: e.message });
        summary.replaceChildren(h("span.bad", null, "✗ invalid: see the error under the text"));
      }
    };
    let timer = 0;
    editor.onInput = () => {
      clearTimeout(timer);
      timer = setTimeout(validate, 300);
    };
    picker.addEventListener("change", () => {
      editor.value = picker.value === "" ? "" : scenarios[+picker.value].yaml;
      validate();
    });
    rate.addEventListener("input", () => (rate.dataset.touched = "1"));
    upload.addEventListener("change", async () => {
      const file = upload.files && upload.files[0];
      if (!file) return;
      editor.value = await file.text();
      picker.value = "";
      validate();
    });

    const form = h(
      "form#start-form.card",
      { novalidate: false },
      h("h1", null, "Start a new load test"),
      loadError ? errorBox(loadError) : null,
      status && status.workers === 0 ? h("div.warn-box", null, "No worker is connected yet: the run will wait for one.") : null,
      h(
        "section.form-section",
        null,
        h("h2", null, "Scenario"),
        h("div.scenario-source", null, field("Scenario file", picker), field("or upload", upload)),
        editor.element,
        summary
      ),
      h(
        "section.form-section",
        null,
        h("h2", null, "Load"),
        h(
          "div.segmented",
          { role: "radiogroup" },
          h("label", { htmlFor: "model-closed" }, modelClosed, " Users (closed model)"),
          h("label", { htmlFor: "model-open" }, modelOpen, " Request rate (open model)")
        ),
        closedFields,
        openFields,
        h("div.fields", null, field("Host", host), field("Run time", runTime))
      ),
      h(
        "section.form-section",
        null,
        h("h2", null, "Labels and thresholds"),
        h("div.fields", null, field("Labels (k=v, comma separated)", labels)),
        field("Thresholds (pass/fail)", thresholds)
      ),
      formError,
      h("div.actions", null, startButton)
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      formError.replaceChildren();
      let parsedLabels;
      try {
        parsedLabels = parseLabels(labels.value);
      } catch (err) {
        formError.replaceChildren(errorBox(err));
        return;
      }
      const yaml = editor.value;
      if (!yaml.trim()) {
        formError.replaceChildren(errorBox("pick a scenario or paste its YAML first"));
        return;
      }
      const open = modelOpen.checked;
      const body = {
        scenario_yaml: yaml,
        scenario_path: picker.value !== "" ? scenarios[+picker.value].path : "pasted.yaml",
        host: host.value.trim(),
        users: open ? 0 : Number(users.value),
        spawn_rate: open ? 0 : Number(spawnRate.value),
        rate: open ? Number(rate.value) : 0,
        max_in_flight: open ? Number(maxInFlight.value || 0) : 0,
        run_time: runTime.value.trim(),
        labels: parsedLabels,
        thresholds: thresholds.value
          .split("\n")
          .map((t) => t.trim())
          .filter(Boolean),
      };
      startButton.disabled = true;
      startButton.textContent = "Starting…";
      try {
        const started = await api("POST", "/api/runs", body);
        location.hash = hashFor("/runs/" + started.run_id);
      } catch (err) {
        if (err.body && err.body.line) editor.setError(err.body);
        formError.replaceChildren(errorBox(err));
        startButton.disabled = false;
        startButton.textContent = "Start";
      }
    });
    page.appendChild(form);
    if (scenarios.length) {
      picker.value = "0";
      editor.value = scenarios[0].yaml;
    }
    validate();
  }

  function field(label, input) {
    return h("label.field", null, h("span.field-label", null, label), input);
  }

  /** `a=1, b=2` (or one per line) as an object; a clear error otherwise. */
  function parseLabels(text) {
    const labels = {};
    for (const part of text.split(/[,\n]/)) {
      const item = part.trim();
      if (!item) continue;
      const at = item.indexOf("=");
      if (at <= 0) throw new Error(`label "${item}" is not key=value (e.g. release=1.2)`);
      labels[item.slice(0, at).trim()] = item.slice(at + 1).trim();
    }
    return labels;
  }

  /** A textarea with line numbers whose error line is highlighted. */
  class YamlEditor {
    constructor() {
      this.gutter = h("div.editor-gutter", { "aria-hidden": "true" });
      this.backdrop = h("div.editor-backdrop", { "aria-hidden": "true" });
      this.textarea = h("textarea#scenario-yaml.editor-text", {
        spellcheck: false,
        wrap: "off",
        rows: 14,
        placeholder: "name: my-scenario\nhost: http://127.0.0.1:8080\nusers:\n  - name: reader\n    tasks:\n      - request: { method: GET, path: / }",
        "aria-label": "scenario YAML",
      });
      this.message = h("div.editor-error", { role: "alert", hidden: true });
      this.element = h("div.editor-wrap", null, h("div.editor", null, this.gutter, h("div.editor-body", null, this.backdrop, this.textarea)), this.message);
      this.errorLine = 0;
      this.onInput = null;
      this.textarea.addEventListener("input", () => {
        this.paint();
        if (this.onInput) this.onInput();
      });
      this.textarea.addEventListener("scroll", () => {
        this.gutter.scrollTop = this.textarea.scrollTop;
        this.backdrop.style.transform = `translate(${-this.textarea.scrollLeft}px, ${-this.textarea.scrollTop}px)`;
      });
      this.textarea.addEventListener("keydown", (e) => {
        if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.metaKey) {
          e.preventDefault();
          document.execCommand("insertText", false, "  ");
        }
      });
      this.paint();
    }
    get value() {
      return this.textarea.value;
    }
    set value(v) {
      this.textarea.value = v;
      this.textarea.scrollTop = 0;
      this.paint();
    }
    /** `{error, line, column}` from the API, or null to clear. */
    setError(err) {
      this.errorLine = err && err.line ? err.line : 0;
      if (err) {
        this.message.hidden = false;
        const where = err.line ? `line ${err.line}${err.column ? ", column " + err.column : ""}: ` : "";
        this.message.textContent = where + (err.error || "invalid scenario");
        this.message.dataset.line = err.line || "";
        // Bring the error line into view unless the user is typing there.
        const ta = this.textarea;
        const top = (this.errorLine - 1) * 20;
        if (this.errorLine && document.activeElement !== ta && (top < ta.scrollTop || top > ta.scrollTop + ta.clientHeight - 40)) {
          ta.scrollTop = Math.max(0, top - 60);
        }
      } else {
        this.message.hidden = true;
        this.message.textContent = "";
      }
      this.paint();
    }
    paint() {
      const lines = this.textarea.value.split("\n").length;
      if (this.gutter.childElementCount !== lines || this.painted !== this.errorLine) {
        const g = document.createDocumentFragment();
        const b = document.createDocumentFragment();
        for (let i = 1; i <= lines; i++) {
          const bad = i === this.errorLine;
          g.appendChild(h("div" + (bad ? ".bad" : ""), null, String(i)));
          b.appendChild(h("div" + (bad ? ".bad" : ""), null, "\u00a0"));
        }
        this.gutter.replaceChildren(g);
        this.backdrop.replaceChildren(b);
        this.painted = this.errorLine;
      }
    }
  }

  // --------------------------------------------------------------- run page

  const STAT_COLUMNS = [
    { title: "Type", value: (s) => s.method || "" },
    { title: "Name", value: (s) => s.name },
    { title: "# Requests", num: true, value: (s) => s.requests, text: (s) => fmtInt(s.requests) },
    { title: "# Fails", num: true, value: (s) => s.failures, text: (s) => fmtInt(s.failures) },
    { title: "Median (ms)", num: true, value: (s) => s.median_ms, text: (s) => fmtMs(s.median_ms) },
    { title: "90%ile (ms)", num: true, value: (s) => s.p90_ms, text: (s) => fmtMs(s.p90_ms) },
    { title: "95%ile (ms)", num: true, value: (s) => s.p95_ms, text: (s) => fmtMs(s.p95_ms) },
    { title: "99%ile (ms)", num: true, value: (s) => s.p99_ms, text: (s) => fmtMs(s.p99_ms) },
    { title: "Average (ms)", num: true, value: (s) => s.mean_ms, text: (s) => fmtMs(s.mean_ms) },
    { title: "Min (ms)", num: true, value: (s) => s.min_ms, text: (s) => fmtMs(s.min_ms) },
    { title: "Max (ms)", num: true, value: (s) => s.max_ms, text: (s) => fmtMs(s.max_ms) },
    { title: "Average size (bytes)", num: true, value: (s) => s.avg_size, text: (s) => fmtInt(s.avg_size) },
    { title: "Current RPS", num: true, value: (s) => s.current_rps, text: (s) => fmtNum(s.current_rps, 1) },
    { title: "Current failures/s", num: true, value: (s) => s.current_failures_per_s, text: (s) => fmtNum(s.current_failures_per_s, 1) },
  ];

  const TABS = [
    ["stats", "Statistics"],
    ["charts", "Charts"],
    ["failures", "Failures"],
    ["workers", "Workers"],
    ["checks", "Checks & thresholds"],
    ["downloads", "Downloads"],
  ];

  /**
   * The run page. `detail` is the stored RunDetail (series for the charts),
   * `live` a LiveRun (current numbers); while the run is live, SSE events
   * replace `live` and append to the charts.
   */
  async function runPage(page, runId, params) {
    document.title = "cicada · run " + shortId(runId);
    let detail = null;
    let live = null;
    if (REPORT) {
      detail = REPORT.run;
      live = REPORT.stats;
    } else {
      const [d, l] = await Promise.allSettled([api("GET", `/api/history/runs/${encodeURIComponent(runId)}`), api("GET", `/api/runs/${encodeURIComponent(runId)}/live`)]);
      if (d.status === "fulfilled") detail = d.value;
      if (l.status === "fulfilled") live = l.value;
      if (!detail && !live) throw d.reason || l.reason;
      if (!live || (detail && detail.run.status !== "running" && !isLiveState(live.state))) {
        // An ended run: its final statistics come with the report.
        try {
          const report = await api("GET", `/api/runs/${encodeURIComponent(runId)}/report.json`);
          detail = report.run || detail;
          live = report.stats || live;
        } catch (_) {
          /* stored detail alone still shows the totals and charts */
        }
      }
    }
    if (!REPORT && !page.isConnected) return; // the user moved on while loading
    const view = new RunView(page, runId, detail, live, params.get("tab") || "stats");
    if (!REPORT && live && isLiveState(live.state)) view.connect();
    cleanup = () => view.close();
  }

  function isLiveState(state) {
    return state === "starting" || state === "running" || state === "stopping";
  }

  /** A LiveRun built from a stored RunDetail, for runs whose report is missing. */
  function liveFromDetail(detail) {
    const stat = (name, m) => {
      const [method, ...rest] = name.split(" ");
      return {
        method: rest.length ? method : "",
        name: rest.length ? rest.join(" ") : name,
        requests: m.requests,
        failures: m.failures,
        median_ms: m.p50_ms,
        p90_ms: m.p90_ms,
        p95_ms: m.p95_ms,
        p99_ms: m.p99_ms,
        max_ms: m.max_ms,
        min_ms: null,
        mean_ms: null,
        avg_size: null,
        rps: m.rps,
        current_rps: null,
        current_failures_per_s: null,
      };
    };
    return {
      run_id: detail.run.id,
      scenario_name: detail.run.scenario_name,
      host: detail.run.host,
      state: detail.run.status,
      started_at_ms: detail.run.started_at_ms,
      elapsed_s: detail.duration_s,
      run_time_s: null,
      error: detail.run.error,
      endpoints: detail.endpoints.map((e) => stat(e.endpoint, e.metrics)),
      total: Object.assign(stat("Aggregated", detail.total), { method: "", name: "Aggregated" }),
      failures: [],
      thresholds: detail.thresholds,
      diagnoses: [],
      worker_list: [],
      current: null,
    };
  }

  class RunView {
    constructor(page, runId, detail, live, tab) {
      this.runId = runId;
      this.detail = detail;
      this.live = live || liveFromDetail(detail);
      this.tab = TABS.some(([k]) => k === tab) ? tab : "stats";
      this.stale = new Set(TABS.map(([k]) => k));
      this.source = null;
      this.schedule = coalesce(() => this.render());
      this.build(page);
      this.loadSeries();
      this.render();
    }

    get isLive() {
      return !REPORT && isLiveState(this.live.state);
    }

    build(page) {
      const run = this.detail ? this.detail.run : null;
      this.title = h("h1.run-title");
      this.badge = h("span");
      this.subtitle = h("div.run-sub");
      this.kpis = {};
      const kpi = (key, label) => {
        const value = h("div.kpi-value", { id: "kpi-" + key }, "–");
        this.kpis[key] = value;
        return h("div.kpi", null, h("div.kpi-label", null, label), value);
      };
      this.stopButton = h("button#stop.danger", { type: "button", onclick: () => this.stop() }, "Stop");
      this.scaleInput = h("input#scale-value", { type: "number", min: "0", step: "any", "aria-label": "new value" });
      this.scaleLabel = h("span.scale-label");
      this.scaleButton = h("button#scale.secondary", { type: "submit" }, "Apply");
      this.scaleMessage = h("span.scale-message", { role: "status" });
      this.controls = h(
        "form.controls",
        { onsubmit: (e) => (e.preventDefault(), this.scale()) },
        h("label.scale", null, this.scaleLabel, this.scaleInput),
        this.scaleButton,
        this.stopButton,
        this.scaleMessage
      );
      this.errorLine = h("div.error-box", { hidden: true, role: "alert" });
      this.lossLine = h("div.error-box.loss", { hidden: true, role: "alert" });
      this.connection = h("span.connection", { title: "live updates" });
      const head = h(
        "section.run-head.card",
        null,
        h("div.run-head-top", null, h("div", null, h("div.run-title-row", null, this.title, this.badge, this.connection), this.subtitle), this.controls),
        h(
          "div.kpis",
          null,
          kpi("users", "Users"),
          kpi("workers", "Workers"),
          kpi("rps", "RPS"),
          kpi("failures", "Failures"),
          kpi("p95", "p95 (ms)"),
          kpi("elapsed", "Elapsed / remaining")
        ),
        this.errorLine,
        this.lossLine
      );

      this.tabButtons = {};
      this.panels = {};
      const tabBar = h("div.tabs", { role: "tablist" });
      for (const [key, label] of TABS) {
        const b = h("button.tab", { type: "button", role: "tab", id: "tab-" + key, onclick: () => this.showTab(key) }, label);
        this.tabButtons[key] = b;
        tabBar.appendChild(b);
        this.panels[key] = h("section.panel", { id: "panel-" + key, role: "tabpanel", hidden: true });
      }

      this.statsTable = new KeyedTable(STAT_COLUMNS, { key: (s) => (s.method || "") + " " + s.name, emptyText: "waiting for the first requests…", cls: "stats" });
      this.panels.stats.appendChild(this.statsTable.element);

      this.charts = {
        rps: null,
        latency: null,
        users: null,
      };
      this.chartGrid = h("div.chart-grid");
      this.panels.charts.appendChild(this.chartGrid);
      const elapsed = CicadaCharts.formatElapsed;
      this.charts.rps = new CicadaCharts.LineChart(this.chartGrid, {
        title: "Total requests per second",
        series: [
          { name: "RPS", color: "#2e7d32" },
          { name: "Failures/s", color: "#c62828" },
        ],
        xFormat: elapsed,
        tooltipFormat: (v) => fmtNum(v, 1),
      });
      this.charts.latency = new CicadaCharts.LineChart(this.chartGrid, {
        title: "Response times (ms)",
        series: [
          { name: "p50", color: "#1565c0" },
          { name: "p95", color: "#ef6c00" },
          { name: "p99", color: "#6a1b9a" },
        ],
        xFormat: elapsed,
        tooltipFormat: (v) => fmtMs(v) + " ms",
      });
      this.charts.users = new CicadaCharts.LineChart(this.chartGrid, {
        title: "Users and target",
        series: [
          { name: "Users", color: "#00838f" },
          { name: "Target users", color: "#00838f", dash: [5, 4] },
          { name: "Target rate (/s)", color: "#8d6e63", axis: "right" },
        ],
        xFormat: elapsed,
        emptyText: "users are charted while the run is live",
        tooltipFormat: (v) => fmtNum(v, 0),
      });

      this.failuresTable = new KeyedTable(
        [
          { title: "Kind", value: (f) => f.kind },
          { title: "Type", value: (f) => f.method },
          { title: "Name", value: (f) => f.name },
          { title: "# Occurrences", num: true, value: (f) => f.count, text: (f) => fmtInt(f.count) },
          { title: "Last message", value: (f) => f.last_message || "" },
        ],
        { key: (f) => `${f.method} ${f.name} ${f.kind}`, emptyText: "no failures", sort: { index: 3, desc: true }, cls: "failures" }
      );
      this.panels.failures.appendChild(this.failuresTable.element);

      this.workersSummary = h("p.muted.workers-summary");
      this.workersTable = new KeyedTable(
        [
          { title: "Worker", value: (w) => w.worker_id },
          { title: "Host", value: (w) => w.hostname || "" },
          { title: "State", value: (w) => w.state },
          { title: "Users", num: true, value: (w) => w.users, text: (w) => fmtInt(w.users) },
          { title: "In flight", num: true, value: (w) => w.in_flight, text: (w) => fmtInt(w.in_flight) },
          { title: "CPU", num: true, value: (w) => w.cpu_percent, text: (w) => fmtNum(w.cpu_percent, 0) + "%" + (w.cores ? ` of ${w.cores * 100}%` : "") },
          { title: "Memory", num: true, value: (w) => w.rss_bytes, text: (w) => fmtBytes(w.rss_bytes) },
          { title: "RPS", num: true, value: (w) => w.rps, text: (w) => fmtNum(w.rps, 1) },
          // Measured over its busy heartbeats, kept between runs: what sizes the fleet.
          { title: "Req/CPU-s", num: true, value: (w) => w.requests_per_cpu_second || 0, text: (w) => (w.requests_per_cpu_second > 0 ? fmtInt(Math.round(w.requests_per_cpu_second)) : "–") },
        ],
        { key: (w) => w.worker_id, emptyText: "no workers reported", rowClass: (w) => (w.state === "saturated" ? "saturated" : ""), cls: "workers" }
      );
      this.panels.workers.append(this.workersSummary, this.workersTable.element);

      this.checksPanel = h("div");
      this.panels.checks.appendChild(this.checksPanel);
      this.buildDownloads();

      page.append(head, tabBar, ...Object.values(this.panels));
      this.showTab(this.tab, true);
      this.renderTitle(run);
    }

    renderTitle(run) {
      const l = this.live;
      this.title.textContent = l.scenario_name || (run && run.scenario_name) || "run";
      this.subtitle.replaceChildren(
        h("span.mono", { title: "run id" }, this.runId),
        " · ",
        h("span", { title: "host" }, l.host || (run && run.host) || ""),
        run && run.started_at_ms ? ` · started ${fmtTime(run.started_at_ms)}` : l.started_at_ms ? ` · started ${fmtTime(l.started_at_ms)}` : "",
        run && Object.keys(run.labels || {}).length ? h("span.labels", null, " · ", labelsText(run.labels)) : ""
      );
    }

    buildDownloads() {
      const base = `/api/runs/${encodeURIComponent(this.runId)}`;
      const items = [
        ["stats.csv", "Statistics CSV", "per endpoint and Aggregated, Locust's columns"],
        ["history.csv", "Per-second history CSV", "requests, failures, RPS, percentiles and users per second"],
        ["failures.csv", "Failures CSV", "method, name, kind, count, last message"],
        ["report.json", "JSON report", "the stored run and its final statistics"],
        ["report.html", "HTML report", "self-contained: opens offline, same charts and tables"],
      ];
      const list = h(
        "ul.downloads",
        null,
        items.map(([file, label, help]) =>
          h("li", null, REPORT ? h("span", null, label) : h("a", { href: `${base}/${file}`, download: `cicada-${this.runId}-${file.replace(".", ".")}`, dataset: { download: file } }, label), h("span.muted", null, " — " + help))
        )
      );
      put(this.panels.downloads,
        REPORT ? h("p.muted", null, "This is an offline report; the downloads are served by the controller's web UI.") : null,
        list,
        !REPORT ? h("p.muted", null, "The files are final once the run has ended; while it runs they hold the numbers so far.") : null
      );
    }

    showTab(key, initial) {
      this.tab = key;
      for (const [k] of TABS) {
        const on = k === key;
        this.tabButtons[k].classList.toggle("active", on);
        this.tabButtons[k].setAttribute("aria-selected", on ? "true" : "false");
        this.panels[k].hidden = !on;
      }
      if (!initial && !REPORT) {
        history.replaceState(null, "", hashFor("/runs/" + this.runId, key === "stats" ? {} : { tab: key }));
      }
      if (key === "charts") {
        this.charts.users.root.hidden = !this.isLive && this.charts.users.points === 0;
        Object.values(this.charts).forEach((c) => c && c.draw());
      }
      this.schedule();
    }

    loadSeries() {
      const series = (this.detail && this.detail.series) || [];
      const xs = series.map((p) => p.t_s);
      this.charts.rps.setData(xs, [series.map((p) => p.requests), series.map((p) => p.failures)]);
      this.charts.latency.setData(xs, [series.map((p) => nullIfZeroReq(p, p.p50_ms)), series.map((p) => nullIfZeroReq(p, p.p95_ms)), series.map((p) => nullIfZeroReq(p, p.p99_ms))]);
      if (series.some((p) => p.users !== undefined)) {
        this.charts.users.setData(xs, [series.map((p) => p.users ?? null), series.map((p) => p.target_users ?? null), series.map((p) => p.target_rate || null)]);
      }
    }

    appendPoint(p) {
      if (!p) return;
      this.charts.rps.append(p.t_s, [p.rps, p.failures_per_s]);
      const some = p.rps > 0 || p.failures_per_s > 0;
      this.charts.latency.append(p.t_s, [some ? p.p50_ms : null, some ? p.p95_ms : null, some ? p.p99_ms : null]);
      this.charts.users.append(p.t_s, [p.users, p.target_users, p.target_rate || null]);
    }

    connect() {
      const url = `/api/runs/${encodeURIComponent(this.runId)}/events`;
      this.source = new EventSource(url);
      this.connection.className = "connection live";
      this.connection.textContent = "live";
      const onData = (e) => {
        try {
          this.live = JSON.parse(e.data);
        } catch (_) {
          return;
        }
        this.appendPoint(this.live.point);
        this.stale = new Set(TABS.map(([k]) => k));
        this.schedule();
      };
      this.source.addEventListener("progress", onData);
      this.source.addEventListener("end", (e) => {
        onData(e);
        this.source.close();
        this.source = null;
        this.connection.className = "connection";
        this.connection.textContent = "";
        this.refreshAfterEnd();
      });
      this.source.addEventListener("error", () => {
        if (!this.source) return;
        if (this.source.readyState === EventSource.CLOSED) {
          this.connection.className = "connection lost";
          this.connection.textContent = "disconnected";
          // The stream may have been refused (401) or the run may be gone.
          api("GET", `/api/runs/${encodeURIComponent(this.runId)}/live`)
            .then((l) => {
              this.live = l;
              this.schedule();
            })
            .catch(() => {});
        } else {
          this.connection.className = "connection reconnecting";
          this.connection.textContent = "reconnecting…";
        }
      });
      this.source.addEventListener("open", () => {
        this.connection.className = "connection live";
        this.connection.textContent = "live";
      });
    }

    /** After the end event: the stored run has the final per-second series. */
    async refreshAfterEnd() {
      refreshCluster();
      try {
        const report = await api("GET", `/api/runs/${encodeURIComponent(this.runId)}/report.json`);
        if (report.run) {
          this.detail = report.run;
          if (this.detail.series && this.detail.series.length) {
            const usersChart = this.charts.users;
            const keepUsers = { xs: usersChart.xs, ys: usersChart.ys };
            this.loadSeries();
            if (!this.detail.series.some((p) => p.users !== undefined)) usersChart.setData(keepUsers.xs, keepUsers.ys);
          }
        }
        if (report.stats) this.live = report.stats;
      } catch (_) {
        /* the last event's numbers stay */
      }
      this.stale = new Set(TABS.map(([k]) => k));
      this.schedule();
    }

    close() {
      if (this.source) this.source.close();
      this.source = null;
      Object.values(this.charts).forEach((c) => c && c.destroy());
      [this.statsTable, this.failuresTable, this.workersTable].forEach((t) => t.destroy());
    }

    async stop() {
      this.stopButton.disabled = true;
      this.stopButton.textContent = "Stopping…";
      try {
        await api("POST", `/api/runs/${encodeURIComponent(this.runId)}/stop`, {});
        this.scaleMessage.textContent = "stopping: users finish their current request";
      } catch (e) {
        this.scaleMessage.textContent = e.message;
        this.stopButton.disabled = false;
        this.stopButton.textContent = "Stop";
      }
    }

    async scale() {
      const value = Number(this.scaleInput.value);
      if (!(value >= 0) || this.scaleInput.value === "") {
        this.scaleMessage.textContent = "enter a number ≥ 0";
        return;
      }
      const open = this.live.target_rate > 0;
      const body = open ? { rate: value } : { users: Math.round(value) };
      this.scaleButton.disabled = true;
      try {
        await api("POST", `/api/runs/${encodeURIComponent(this.runId)}/scale`, body);
        this.scaleMessage.textContent = open ? `target rate set to ${value}/s` : `target users set to ${Math.round(value)}`;
        this.scaleInput.dataset.dirty = "";
      } catch (e) {
        this.scaleMessage.textContent = e.message;
      } finally {
        this.scaleButton.disabled = false;
      }
    }

    render() {
      const l = this.live;
      this.renderHead(l);
      if (!this.stale.has(this.tab)) return;
      this.stale.delete(this.tab);
      switch (this.tab) {
        case "stats":
          this.statsTable.update(withoutConnectionRows(l.endpoints || []), Object.assign({}, l.total || {}, { method: "", name: "Aggregated" }));
          break;
        case "failures":
          this.failuresTable.update(l.failures || []);
          break;
        case "workers":
          this.renderWorkers(l.worker_list || []);
          break;
        case "checks":
          this.renderChecks(l);
          break;
        default:
          break;
      }
    }

    renderHead(l) {
      const set = (key, text, cls) => {
        const el = this.kpis[key];
        if (el.textContent !== text) el.textContent = text;
        el.className = "kpi-value" + (cls ? " " + cls : "");
      };
      const total = l.total || {};
      const open = l.target_rate > 0;
      const state = l.state || (this.detail && this.detail.run.status);
      this.badge.replaceChildren(statusBadge(state));
      set("users", open ? `${fmtInt(l.active_users)} (rate ${fmtNum(l.target_rate, 0)}/s)` : l.target_users !== undefined && l.target_users !== null ? `${fmtInt(l.active_users)} / ${fmtInt(l.target_users)}` : "–");
      set("workers", l.workers !== undefined && l.workers !== null ? fmtInt(l.workers) : "–");
      const rps = l.current && this.isLive ? l.current.rps : total.rps;
      set("rps", fmtNum(rps, 1));
      const failRate = total.requests ? total.failures / total.requests : 0;
      set("failures", fmtPct(failRate), failRate > 0 ? "bad" : "");
      const p95 = l.current && this.isLive ? l.current.p95_ms : total.p95_ms;
      set("p95", fmtMs(p95));
      const remaining = l.run_time_s && this.isLive ? fmtDuration(Math.max(0, l.run_time_s - (l.elapsed_s || 0))) + " left" : this.isLive ? "until stopped" : "";
      set("elapsed", fmtDuration(l.elapsed_s) + (remaining ? " · " + remaining : ""));
      this.controls.hidden = !this.isLive;
      if (this.isLive) {
        this.scaleLabel.textContent = open ? "Target rate/s" : "Users";
        if (document.activeElement !== this.scaleInput && !this.scaleInput.dataset.dirty) {
          const v = String(open ? l.target_rate : l.target_users ?? "");
          if (this.scaleInput.value !== v) this.scaleInput.value = v;
        }
        this.scaleInput.oninput = () => (this.scaleInput.dataset.dirty = "1");
        if (l.state === "stopping") {
          this.stopButton.disabled = true;
          this.stopButton.textContent = "Stopping…";
        }
      }
      if (l.error) {
        this.errorLine.hidden = false;
        this.errorLine.textContent = l.error;
      } else this.errorLine.hidden = true;
      const lost = l.lost_workers || [];
      this.lossLine.hidden = lost.length === 0;
      this.lossLine.textContent = lost
        .map((w) =>
          w.unrecorded_max == null
            ? `Lost: worker ${w.worker_id} disappeared without its final flush; the final numbers will bound what it took with it.`
            : `Lost: worker ${w.worker_id} disappeared at ${w.at_s.toFixed(1)} s: up to ${w.unrecorded_max} requests it completed are not in this run.`
        )
        .join(" ");
      this.tabButtons.failures.textContent = "Failures" + ((l.failures || []).length ? ` (${(l.failures || []).length})` : "");
      const failedChecks = (l.thresholds || []).filter((t) => t.passed === false).length + (l.diagnoses || []).length + (l.checks || []).filter((c) => c.failed > 0).length;
      this.tabButtons.checks.classList.toggle("alert", failedChecks > 0);
    }

    renderWorkers(workers) {
      const saturated = workers.filter((w) => w.state === "saturated").length;
      this.workersSummary.textContent = `${workers.length} worker${workers.length === 1 ? "" : "s"}` + (saturated ? ` · ${saturated} saturated (above 90% of their cores' CPU): their latencies include queueing in the generator` : "");
      this.workersSummary.classList.toggle("bad", saturated > 0);
      this.workersTable.update(workers);
    }

    renderChecks(l) {
      const thresholds = l.thresholds || [];
      const diagnoses = l.diagnoses || [];
      const rows = thresholds.map((t) =>
        h(
          "tr",
          { className: t.passed === false ? "fail" : t.passed ? "pass" : "" },
          h("td", null, h("span.badge." + (t.passed === false ? "status-failed" : t.passed ? "status-finished" : "status-running"), null, t.passed === false ? "FAIL" : t.passed ? "PASS" : "pending")),
          h("td.mono", null, t.expression),
          h("td", null, t.endpoint || "all endpoints"),
          h("td.num", null, t.observed_text || (t.observed === null || t.observed === undefined ? "–" : fmtNum(t.observed)))
        )
      );
      const checks = l.checks || [];
      const checkRows = checks.map((c) => {
        const total = c.passed + c.failed;
        return h(
          "tr",
          { className: c.failed > 0 ? "fail" : "pass" },
          h("td", null, h("span.badge." + (c.failed > 0 ? "status-failed" : "status-finished"), null, c.failed > 0 ? "FAIL" : "ok")),
          h("td", null, c.name),
          h("td", null, c.endpoint),
          h("td.num", null, total ? fmtPct(c.passed / total) : "–"),
          h("td.num", null, fmtInt(c.passed)),
          h("td.num", null, fmtInt(c.failed))
        );
      });
      this.checksPanel.replaceChildren(
        ...[h("h2", null, "Response checks"),
        checks.length
          ? h("div.table-scroll", null, h("table.data.response-checks", null, h("thead", null, h("tr", null, h("th", null, "Result"), h("th", null, "Check"), h("th", null, "Endpoint"), h("th.num", null, "Passed %"), h("th.num", null, "Passed"), h("th.num", null, "Failed"))), h("tbody", null, checkRows)))
          : h("p.muted", null, "No response checks: add check: to a request in the scenario (docs/SCENARIO.md)."),
        h("h2", null, "Thresholds"),
        thresholds.length
          ? h("div.table-scroll", null, h("table.data.thresholds", null, h("thead", null, h("tr", null, h("th", null, "Result"), h("th", null, "Expression"), h("th", null, "Endpoint"), h("th.num", null, "Observed"))), h("tbody", null, rows)))
          : h("p.muted", null, "No thresholds: add them on the start form (e.g. p95 < 150ms) or in the scenario."),
        h("h2", null, "Diagnosis"),
        diagnoses.length
          ? diagnoses.map((d) =>
              h(
                "article.diagnosis",
                null,
                h("h3", null, h("span.badge.status-failed", null, d.kind.replace(/_/g, " ")), " ", d.summary),
                d.evidence && d.evidence.length ? h("ul", null, d.evidence.map((e) => h("li", null, typeof e === "string" ? e : JSON.stringify(e)))) : null,
                d.suggested_workers ? h("p", null, `Suggested workers: ${d.suggested_workers}`) : null
              )
            )
          : h("p.muted", null, "Nothing to report: the generator kept up and the target answered."),
        ].flat()
      );
    }
  }

  function nullIfZeroReq(p, v) {
    return p.requests > 0 ? v : null;
  }

  // ----------------------------------------------------------- history page

  const PAGE_SIZE = 25;

  async function historyPage(page, params) {
    document.title = "cicada · history";
    const scenario = params.get("scenario") || "";
    const label = params.get("label") || "";
    const status = params.get("status") || "";
    const before = params.get("before_ms") || "";
    const query = new URLSearchParams();
    if (scenario) query.set("scenario", scenario);
    if (label) query.set("label", label);
    if (status) query.set("status", status);
    if (before) query.set("before_ms", before);
    query.set("limit", String(PAGE_SIZE + 1));

    const scenarioInput = h("input#filter-scenario", { type: "text", value: scenario, placeholder: "any" });
    const labelInput = h("input#filter-label", { type: "text", value: label, placeholder: "key=value" });
    const statusInput = h("select#filter-status", null, ["", "running", "finished", "failed"].map((s) => h("option", { value: s, selected: s === status }, s || "any")));
    const filters = h(
      "form.filters.card",
      {
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = hashFor("/history", { scenario: scenarioInput.value.trim(), label: labelInput.value.trim(), status: statusInput.value });
        },
      },
      field("Scenario", scenarioInput),
      field("Label", labelInput),
      field("Status", statusInput),
      h("div.filter-actions", null, h("button.secondary", { type: "submit" }, "Filter"), h("a.button-link", { href: "#/history" }, "Clear"))
    );
    page.append(h("div.page-head", null, h("h1", null, "History")), filters);

    const runs = await api("GET", "/api/history/runs?" + query.toString());
    const more = runs.length > PAGE_SIZE;
    const shown = runs.slice(0, PAGE_SIZE);
    const picked = [];
    const compareButton = h("button#compare.primary", { type: "button", disabled: true }, "Compare selected");
    const pickNote = h("span.muted", null, "Tick two runs to compare them.");
    const sync = () => {
      compareButton.disabled = picked.length !== 2;
      pickNote.textContent = picked.length === 2 ? "" : `Tick two runs to compare them (${picked.length} ticked).`;
    };
    compareButton.addEventListener("click", () => {
      const [x, y] = picked.map((id) => shown.find((r) => r.id === id)).sort((a, b) => a.started_at_ms - b.started_at_ms);
      location.hash = hashFor("/compare", { a: x.id, b: y.id });
    });
    const rows = shown.map((r) => {
      const box = h("input.pick", { type: "checkbox", "aria-label": "pick run " + r.id, value: r.id });
      box.addEventListener("change", () => {
        if (box.checked) {
          picked.push(r.id);
          if (picked.length > 2) {
            const dropped = picked.shift();
            const other = page.querySelector(`input.pick[value="${CSS.escape(dropped)}"]`);
            if (other) other.checked = false;
          }
        } else picked.splice(picked.indexOf(r.id), 1);
        sync();
      });
      const duration = r.ended_at_ms ? (r.ended_at_ms - r.started_at_ms) / 1000 : null;
      return h(
        "tr",
        null,
        h("td", null, box),
        h("td", null, h("a.mono", { href: hashFor("/runs/" + r.id) }, shortId(r.id))),
        h("td", null, h("a", { href: hashFor("/history", { scenario: r.scenario_name }), title: "only this scenario" }, r.scenario_name)),
        h("td", null, statusBadge(r.status)),
        h("td", null, fmtTime(r.started_at_ms)),
        h("td.num", null, duration === null ? "–" : fmtDuration(duration)),
        h("td", null, r.host),
        h("td.labels", null, labelsText(r.labels)),
        h("td", null, h("a", { href: hashFor("/trend", { scenario: r.scenario_name }) }, "trend"))
      );
    });
    const table = h(
      "div.table-scroll",
      null,
      h(
        "table.data.history",
        null,
        h("thead", null, h("tr", null, ["", "Run", "Scenario", "Status", "Started", "Duration", "Host", "Labels", ""].map((t) => h("th", null, t)))),
        h("tbody", null, rows.length ? rows : h("tr.empty", null, h("td", { colSpan: 9 }, "No stored runs match.")))
      )
    );
    const paging = h(
      "div.paging",
      null,
      before ? h("a.button-link", { href: hashFor("/history", { scenario, label, status }) }, "« Newest") : null,
      more ? h("a#older.button-link", { href: hashFor("/history", { scenario, label, status, before_ms: shown[shown.length - 1].started_at_ms }) }, "Older »") : null
    );
    page.append(h("div.card", null, h("div.toolbar", null, compareButton, pickNote), table, paging));
  }

  // ----------------------------------------------------------- compare page

  async function comparePage(page, params) {
    document.title = "cicada · compare";
    const a = params.get("a") || "";
    const b = params.get("b") || "";
    const from = params.get("from") || "";
    const to = params.get("to") || "";
    const tolerance = params.get("tolerance") || "";
    const inputs = {
      a: h("input#cmp-a", { type: "text", value: a, required: true, placeholder: "baseline run id" }),
      b: h("input#cmp-b", { type: "text", value: b, required: true, placeholder: "candidate run id" }),
      from: h("input#cmp-from", { type: "number", min: "0", value: from, placeholder: "0" }),
      to: h("input#cmp-to", { type: "number", min: "1", value: to, placeholder: "end" }),
      tolerance: h("input#cmp-tolerance", { type: "text", value: tolerance, placeholder: "5%" }),
    };
    const form = h(
      "form.filters.card",
      {
        onsubmit: (e) => {
          e.preventDefault();
          const v = {};
          for (const [k, input] of Object.entries(inputs)) v[k] = input.value.trim();
          location.hash = hashFor("/compare", v);
        },
      },
      field("Run A (baseline)", inputs.a),
      field("Run B", inputs.b),
      field("Window from (s)", inputs.from),
      field("to (s)", inputs.to),
      field("Tolerance", inputs.tolerance),
      h("div.filter-actions", null, h("button.secondary", { type: "submit" }, "Compare"))
    );
    page.append(h("div.page-head", null, h("h1", null, "Compare runs")), form);
    if (!a || !b) {
      page.appendChild(h("p.muted", null, "Pick two runs on the History page, or enter their ids."));
      return;
    }
    const q = new URLSearchParams({ a, b });
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    if (tolerance) q.set("tolerance", tolerance);
    const c = await api("GET", "/api/history/compare?" + q.toString());

    const runCard = (label, r) =>
      h(
        "div.card.run-card",
        null,
        h("div.run-card-label", null, label),
        h("a.mono", { href: hashFor("/runs/" + r.id) }, shortId(r.id)),
        " ",
        statusBadge(r.status),
        h("div", null, r.scenario_name, " · ", r.host),
        h("div.muted", null, fmtTime(r.started_at_ms), r.ended_at_ms ? ` · ${fmtDuration((r.ended_at_ms - r.started_at_ms) / 1000)}` : ""),
        Object.keys(r.labels || {}).length ? h("div.labels", null, labelsText(r.labels)) : null
      );
    const windowText = c.window && (c.window.from_s || c.window.to_s) ? `seconds ${c.window.from_s} to ${c.window.to_s ?? "end"}` : "the whole runs";
    const tolText = fmtNum((c.tolerance || 0) * 100, 1) + "%";
    put(
      page,
      h("div.run-cards", null, runCard("A (baseline)", c.a), runCard("B", c.b)),
      h(
        "div" + (c.regression ? ".verdict.bad" : ".verdict.good"),
        { id: "verdict" },
        c.regression ? `Regression: B is worse than A beyond ${tolText} (${windowText}).` : `No regression beyond ${tolText} (${windowText}).`
      ),
      h("div.card", null, h("h2.card-title", null, "Total"), metricTable(c.total)),
      h("div.card", null, h("h2.card-title", null, "Per endpoint"), h("p.muted", null, "B's value and its change from A; hover a cell for both values."), endpointMatrix(c.endpoints)),
      c.only_in_a.length || c.only_in_b.length
        ? h(
            "div.card",
            null,
            c.only_in_a.length ? h("p", null, h("b", null, "Only in A: "), c.only_in_a.join(", ")) : null,
            c.only_in_b.length ? h("p", null, h("b", null, "Only in B: "), c.only_in_b.join(", ")) : null
          )
        : null
    );
  }

  function metricLabel(metric) {
    return { p999: "p99.9", failure_rate: "failure rate", rps: "RPS" }[metric] || metric;
  }
  function metricValue(metric, v) {
    if (metric === "failure_rate") return fmtPct(v);
    if (metric === "requests") return fmtInt(v);
    if (metric === "rps") return fmtNum(v, 1);
    return fmtMs(v) + " ms";
  }
  function relText(m) {
    if (m.relative === null || m.relative === undefined) return m.delta === 0 ? "0%" : "new";
    return (m.relative > 0 ? "+" : "") + fmtNum(m.relative * 100, 1) + "%";
  }
  function deltaText(m) {
    const sign = m.delta > 0 ? "+" : m.delta < 0 ? "−" : "";
    return sign + metricValue(m.metric, Math.abs(m.delta));
  }

  function metricTable(ec) {
    return h(
      "div.table-scroll",
      null,
      h(
        "table.data.compare",
        null,
        h("thead", null, h("tr", null, h("th", null, "Metric"), h("th.num", null, "A"), h("th.num", null, "B"), h("th.num", null, "Δ"), h("th.num", null, "Δ %"), h("th", null, ""))),
        h(
          "tbody",
          null,
          ec.metrics.map((m) =>
            h(
              "tr" + (m.regression ? ".regression" : ""),
              null,
              h("td", null, metricLabel(m.metric)),
              h("td.num", null, metricValue(m.metric, m.a)),
              h("td.num", null, metricValue(m.metric, m.b)),
              h("td.num", null, deltaText(m)),
              h("td.num", null, relText(m)),
              h("td", null, m.regression ? h("span.badge.status-failed", null, "regression") : "")
            )
          )
        )
      )
    );
  }

  // Each request endpoint has a CONNECT row (new connections, connect
  // times) and a TLS row (handshakes): not requests, so not in the
  // statistics table (the CLI's Connections table and the summary JSON
  // show them).
  function withoutConnectionRows(endpoints) {
    return endpoints.filter((e) => e.method !== "CONNECT" && e.method !== "TLS");
  }

  function endpointMatrix(endpoints) {
    if (!endpoints.length) return h("p.muted", null, "No endpoint is in both runs.");
    const metrics = endpoints[0].metrics.map((m) => m.metric);
    return h(
      "div.table-scroll",
      null,
      h(
        "table.data.compare-matrix",
        null,
        h("thead", null, h("tr", null, h("th", null, "Endpoint"), metrics.map((m) => h("th.num", null, metricLabel(m))))),
        h(
          "tbody",
          null,
          endpoints.map((e) =>
            h(
              "tr" + (e.regression ? ".regression-row" : ""),
              null,
              h("td", null, e.endpoint),
              e.metrics.map((m) =>
                h(
                  "td.num" + (m.regression ? ".regression" : ""),
                  { title: `A ${metricValue(m.metric, m.a)} → B ${metricValue(m.metric, m.b)} (${deltaText(m)})` },
                  h("div", null, metricValue(m.metric, m.b)),
                  h("div.delta", null, relText(m))
                )
              )
            )
          )
        )
      )
    );
  }

  // ------------------------------------------------------------- trend page

  const METRICS = ["p50", "p90", "p95", "p99", "p999", "max", "rps", "requests", "failure_rate"];

  async function trendPage(page, params) {
    document.title = "cicada · trend";
    const scenario = params.get("scenario") || "";
    const metric = params.get("metric") || "p95";
    const endpoint = params.get("endpoint") || "total";
    const last = params.get("last") || "30";

    let known = [];
    try {
      const runs = await api("GET", "/api/history/runs?limit=200");
      known = [...new Set(runs.map((r) => r.scenario_name))];
    } catch (_) {
      /* the free text input still works */
    }
    const scenarioInput = h("input#trend-scenario", { type: "text", value: scenario || known[0] || "", required: true, list: "known-scenarios" });
    scenarioInput.setAttribute("list", "known-scenarios");
    const metricInput = h("select#trend-metric", null, METRICS.map((m) => h("option", { value: m, selected: m === metric }, metricLabel(m))));
    const endpointInput = h("input#trend-endpoint", { type: "text", value: endpoint, placeholder: "total or GET /path" });
    const lastInput = h("input#trend-last", { type: "number", min: "1", max: "1000", value: last });
    const form = h(
      "form.filters.card",
      {
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = hashFor("/trend", { scenario: scenarioInput.value.trim(), metric: metricInput.value, endpoint: endpointInput.value.trim(), last: lastInput.value });
        },
      },
      h("datalist#known-scenarios", null, known.map((s) => h("option", { value: s }))),
      field("Scenario", scenarioInput),
      field("Metric", metricInput),
      field("Endpoint", endpointInput),
      field("Last N runs", lastInput),
      h("div.filter-actions", null, h("button.secondary", { type: "submit" }, "Show"))
    );
    page.append(h("div.page-head", null, h("h1", null, "Trend")), form);
    const chosen = scenario || known[0];
    if (!chosen) {
      page.appendChild(h("p.muted", null, "No stored runs yet: run a scenario first."));
      return;
    }
    const q = new URLSearchParams({ scenario: chosen, metric, endpoint, last });
    const trend = await api("GET", "/api/history/trend?" + q.toString());
    if (!page.isConnected) return;
    const card = h("div.card");
    page.appendChild(card);
    const valueFmt = (v) => metricValue(trend.metric, v);
    const chart = new CicadaCharts.LineChart(card, {
      title: `${metricLabel(trend.metric)} of ${trend.endpoint} across the last ${trend.points.length} run${trend.points.length === 1 ? "" : "s"} of ${trend.scenario}`,
      series: [{ name: metricLabel(trend.metric), color: "#2e7d32" }],
      dots: true,
      xFormat: (i) => {
        const p = trend.points[Math.round(i)];
        return p ? CicadaCharts.formatClock(p.started_at_ms) : "";
      },
      xTicks: 5,
      tooltipFormat: valueFmt,
      yFormat: trend.metric === "failure_rate" ? (v) => fmtNum(v * 100, 1) + "%" : CicadaCharts.formatCompact,
      emptyText: "no runs",
    });
    // x is the run's position (runs are not evenly spaced in time).
    chart.setData(
      trend.points.map((_, i) => i),
      [trend.points.map((p) => (p.value === null || p.value === undefined ? null : p.value))]
    );
    cleanup = () => chart.destroy();
    card.appendChild(
      h(
        "div.table-scroll",
        null,
        h(
          "table.data.trend",
          null,
          h("thead", null, h("tr", null, h("th", null, "Run"), h("th", null, "Started"), h("th", null, "Labels"), h("th.num", null, metricLabel(trend.metric)))),
          h(
            "tbody",
            null,
            trend.points
              .slice()
              .reverse()
              .map((p) => h("tr", null, h("td", null, h("a.mono", { href: hashFor("/runs/" + p.run_id) }, shortId(p.run_id))), h("td", null, fmtTime(p.started_at_ms)), h("td.labels", null, labelsText(p.labels)), h("td.num", null, p.value === null || p.value === undefined ? "–" : valueFmt(p.value))))
          )
        )
      )
    );
  }

  // ------------------------------------------------------------------- boot

  renderShell();
  if (REPORT) {
    const runId = (REPORT.run && REPORT.run.run && REPORT.run.run.id) || (REPORT.stats && REPORT.stats.run_id) || "";
    const page = h("div.page");
    app.replaceChildren(page);
    runPage(page, runId, new URLSearchParams()).catch((e) => page.appendChild(errorBox(e)));
  } else {
    window.addEventListener("hashchange", route);
    route();
  }
})();
