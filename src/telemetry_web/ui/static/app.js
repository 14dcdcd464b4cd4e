// telemetry ui: a dependency-free page over the store's JSON endpoints (see ui/_app.py).
"use strict";

const main = document.getElementById("main");
let tail = null; // the live EventSource of the Logs view

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) query.set(key, value);
  }
  const response = await fetch(path + (query.toString() ? "?" + query : ""), { credentials: "same-origin" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 1000) return (value / 1000).toFixed(2) + " s";
  if (value >= 10) return value.toFixed(0) + " ms";
  return value.toFixed(2) + " ms";
}
const sec = (value) => (value === null || value === undefined ? "–" : ms(value * 1000));
const when = (epoch) => new Date(epoch * 1000).toLocaleString();
const pct = (value) => (value * 100).toFixed(1) + " %";
const traceLink = (id) => el("a", { href: "#/trace/" + id, class: "mono trace-link" }, id);

function failure(error) {
  main.replaceChildren(el("p", { class: "note error", role: "alert" }, String(error.message || error)));
}

// --- traces --------------------------------------------------------------------------------

function field(label, control) {
  return el("label", {}, label, control);
}

async function viewTraces(params) {
  const form = el("form", { class: "filters", id: "search" });
  const service = el("select", { name: "service" }, el("option", { value: "" }, "any"));
  const inputs = {
    service,
    route: el("input", { name: "route", placeholder: "/api/users/{id}", list: "routes", size: 18 }),
    status: el("select", { name: "status" }, ["", "error", "ok", "2xx", "3xx", "4xx", "5xx"].map(
      (s) => el("option", { value: s }, s || "any"))),
    min_ms: el("input", { name: "min_ms", type: "number", min: 0, placeholder: "ms", size: 6 }),
    since: el("select", { name: "since" }, ["", "15m", "1h", "6h", "1d", "7d"].map(
      (s) => el("option", { value: s }, s || "any time"))),
    start: el("input", { name: "start", type: "datetime-local" }),
    end: el("input", { name: "end", type: "datetime-local" }),
    trace_id: el("input", { name: "trace_id", placeholder: "trace id or prefix", size: 16 }),
    text: el("input", { name: "text", placeholder: "text in log lines", size: 16 }),
  };
  const routes = el("datalist", { id: "routes" });
  form.append(
    field("Service", inputs.service), field("Route", inputs.route), field("Status", inputs.status),
    field("Min duration", inputs.min_ms), field("Since", inputs.since), field("From", inputs.start),
    field("To", inputs.end), field("Trace id", inputs.trace_id), field("Log text", inputs.text),
    el("button", { type: "submit" }, "Search"), routes);
  const results = el("div", { id: "results" });
  main.replaceChildren(el("h2", {}, "Traces"), form, results);
  for (const [key, value] of Object.entries(params)) if (inputs[key]) inputs[key].value = value;
  api("api/services", { window: "7d" }).then((known) => {
    for (const name of known.services) service.append(el("option", { value: name }, name));
    for (const route of known.routes) routes.append(el("option", { value: route }));
    if (params.service) service.value = params.service;
  }).catch(() => {});
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = {};
    for (const [key, input] of Object.entries(inputs)) if (input.value) query[key] = input.value;
    location.hash = "#/traces?" + new URLSearchParams(query);
  });
  const query = { ...params };
  for (const key of ["start", "end"]) if (query[key]) query[key] = new Date(query[key]).getTime() / 1000;
  await searchPage(results, query, []);
}

async function searchPage(results, query, shown) {
  let page;
  try { page = await api("api/traces", query); } catch (error) { results.replaceChildren(el("p", { class: "note" }, error.message)); return; }
  const seen = new Set(shown.map((t) => t.trace_id));
  const traces = shown.concat(page.traces.filter((t) => !seen.has(t.trace_id)));
  const longest = Math.max(...traces.map((t) => t.duration), 1e-9);
  const rows = traces.map((t) => el("tr", {
    class: "clickable trace-row" + (t.status === "error" ? " error" : ""),
    "data-trace-id": t.trace_id, onclick: () => { location.hash = "#/trace/" + t.trace_id; },
  },
  el("td", {}, when(t.start)),
  el("td", {}, t.service),
  el("td", { class: "trace-name" }, t.name),
  el("td", {}, t.http_status ? el("span", { class: "badge" + (t.http_status >= 500 ? " error" : "") }, t.http_status) : ""),
  el("td", { class: "num" }, t.span_count),
  el("td", { class: "num" }, sec(t.duration)),
  el("td", { style: "width:30%" }, el("span", { class: "durbar", style: `width:${Math.max(1, (t.duration / longest) * 100)}%` })),
  el("td", {}, traceLink(t.trace_id))));
  const more = page.next ? el("button", { id: "more", onclick: () => searchPage(results, { ...query, before: page.next }, traces) }, "More") : null;
  results.replaceChildren(
    traces.length ? el("table", { id: "trace-list" },
      el("tr", {}, ["Start", "Service", "Trace", "Status", "Spans", "Duration", "", "Trace id"].map(
        (h, i) => el("th", { class: i === 4 || i === 5 ? "num" : null }, h))), rows)
      : el("p", { class: "note" }, more ? "No match among the newest rows read so far (a page reads at most 200,000 spans, or 20,000 log lines for a text): More reads older ones." : "No trace matches."), ...(more ? [more] : []));
}

// --- one trace -----------------------------------------------------------------------------

function kv(object) {
  return el("table", {}, Object.entries(object || {}).map(([key, value]) => el("tr", {},
    el("td", { class: "mono" }, key),
    el("td", { class: "mono" }, typeof value === "string" ? value : JSON.stringify(value)))));
}

async function viewTrace(traceId) {
  let trace;
  try { trace = await api("api/traces/" + encodeURIComponent(traceId)); } catch (error) { failure(error); return; }
  const total = Math.max(trace.duration_ms, 1e-6);
  const details = el("div", { class: "details", id: "span-details", hidden: true });
  const rows = trace.rows.map((row) => {
    const indent = `padding-left:${6 + row.depth * 16}px`;
    const left = (row.offset_ms / total) * 100;
    if (row.type === "log") {
      return el("div", { class: "wf-row log", "data-depth": row.depth, "data-level": row.level },
        el("div", { class: "wf-label", style: indent, title: JSON.stringify(row.fields) },
          el("span", { class: "level " + row.level }, row.level), " ", el("span", { class: "event" }, row.event)),
        el("div", { class: "wf-track" }, el("span", { class: "wf-mark", style: `left:${left}%` }),
          el("span", { class: "wf-time", style: `left:${left}%` }, "+" + ms(row.offset_ms))));
    }
    const node = el("div", {
      class: "wf-row span" + (row.status === "error" ? " error" : ""),
      "data-span-id": row.span_id, "data-parent-id": row.parent_id || "", "data-depth": row.depth,
    },
    el("div", { class: "wf-label", style: indent },
      row.status === "error" ? el("span", { class: "err-mark", title: "error" }, "⚠ ") : "",
      el("span", { class: "name" }, row.name), " ", el("span", { class: "muted" }, row.service)),
    el("div", { class: "wf-track" },
      el("span", { class: "wf-bar", style: `left:${left}%;width:${(row.duration_ms / total) * 100}%` }),
      el("span", { class: "wf-time" + (left + (row.duration_ms / total) * 100 > 88 ? " inside" : ""),
        style: `left:${Math.min(left + (row.duration_ms / total) * 100, 88)}%` }, ms(row.duration_ms))));
    node.addEventListener("click", () => {
      document.querySelectorAll(".wf-row.selected").forEach((n) => n.classList.remove("selected"));
      node.classList.add("selected");
      details.hidden = false;
      details.replaceChildren(
        el("h3", {}, row.name, " ", el("span", { class: "muted" }, `${row.kind} · ${row.service} · ${ms(row.duration_ms)}`)),
        row.status_message ? el("p", { class: "error-message" }, row.status_message) : "",
        el("h3", {}, "Attributes"), kv(row.attributes),
        el("h3", {}, "Events"),
        ...(row.events.length ? row.events.map((event) => el("div", { class: "event" },
          el("strong", {}, event.name), " ", el("span", { class: "muted" }, event.offset_ms !== undefined ? "+" + ms(event.offset_ms) : ""),
          kv(event.attributes))) : [el("p", { class: "muted" }, "none")]));
    });
    return node;
  });
  main.replaceChildren(
    el("h2", {}, trace.error ? el("span", { class: "badge error" }, "error") : "", " ", trace.name),
    el("p", { class: "muted" }, el("span", { class: "mono", id: "trace-id" }, trace.trace_id),
      ` · ${trace.service} · ${when(trace.start)} · ${ms(trace.duration_ms)} · ${trace.span_count} spans`),
    el("div", { class: "waterfall", id: "waterfall" }, rows), details);
}

// --- routes --------------------------------------------------------------------------------

const WINDOWS = ["15m", "1h", "6h", "1d", "7d"];

function windowSelect(current, onchange) {
  const select = el("select", { name: "window", onchange: () => onchange(select.value) },
    WINDOWS.map((w) => el("option", { value: w }, w)));
  select.value = current;
  return field("Window", select);
}

async function viewRoutes(params) {
  const window = params.window || "1h";
  let data;
  try { data = await api("api/routes", { window }); } catch (error) { failure(error); return; }
  const rows = data.routes.map((r) => el("tr", {
    class: "clickable route-row", onclick: () => {
      location.hash = "#/route?" + new URLSearchParams({ service: r.service, route: r.route, window });
    },
  }, el("td", {}, r.service), el("td", { class: "mono" }, r.route), el("td", { class: "num" }, r.rate.toFixed(3)),
  el("td", { class: "num" }, pct(r.error_ratio)), el("td", { class: "num" }, sec(r.p50)),
  el("td", { class: "num" }, sec(r.p95)), el("td", { class: "num" }, sec(r.p99))));
  main.replaceChildren(el("h2", {}, "Routes"),
    el("form", { class: "filters" }, windowSelect(window, (w) => { location.hash = "#/routes?window=" + w; })),
    el("p", { class: "note" }, data.source === "metrics" ? "From the store's metric history." : "From the stored spans (no metric history)."),
    data.routes.length ? el("table", { id: "route-list" }, el("tr", {},
      ["Service", "Route", "Requests/s", "Errors", "p50", "p95", "p99"].map((h, i) => el("th", { class: i > 1 ? "num" : null }, h))), rows)
      : el("p", { class: "note" }, "No requests in this window."));
}

function chart(points) {
  const width = 900, height = 240, pad = { l: 56, r: 12, t: 10, b: 24 };
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, ...kids) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    kids.forEach((kid) => node.append(kid));
    return node;
  };
  const root = svg("svg", { class: "chart", id: "latency-chart", viewBox: `0 0 ${width} ${height}`, width: "100%" });
  if (!points.length) return root;
  const t0 = points[0].start, t1 = points[points.length - 1].end;
  const top = Math.max(...points.map((p) => p.p99 || p.p95 || p.p50 || 0), 1e-6);
  const x = (t) => pad.l + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / top) * (height - pad.t - pad.b);
  for (const frac of [0, 0.5, 1]) {
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(top * frac), y2: y(top * frac), stroke: "#e3e6ec" }));
    root.append(svg("text", { x: 4, y: y(top * frac) + 4 }, document.createTextNode(sec(top * frac))));
  }
  root.append(svg("text", { x: pad.l, y: height - 6 }, document.createTextNode(new Date(t0 * 1000).toLocaleTimeString())));
  root.append(svg("text", { x: width - pad.r - 60, y: height - 6 }, document.createTextNode(new Date(t1 * 1000).toLocaleTimeString())));
  const colours = { p50: "#4c7bd9", p95: "#c98a0b", p99: "#d2413a" };
  for (const [key, colour] of Object.entries(colours)) {
    const present = points.filter((p) => p[key] !== null && p[key] !== undefined);
    const mid = (p) => x((p.start + p.end) / 2);
    root.append(svg("polyline", { fill: "none", stroke: colour, "stroke-width": 1.5,
      points: present.map((p) => `${mid(p)},${y(p[key])}`).join(" ") }));
    for (const p of present) {
      const dot = svg("circle", { cx: mid(p), cy: y(p[key]), r: 2.5, fill: colour, class: "point " + key });
      dot.append(svg("title", {}, document.createTextNode(`${key} ${sec(p[key])} · ${p.rate.toFixed(2)}/s · ${pct(p.error_ratio)} errors`)));
      root.append(dot);
    }
  }
  return root;
}

function traceTable(id, traces) {
  if (!traces.length) return el("p", { class: "muted" }, "none");
  return el("table", { id }, traces.map((t) => el("tr", { class: "clickable" + (t.status === "error" ? " error" : ""),
    onclick: () => { location.hash = "#/trace/" + t.trace_id; } },
  el("td", {}, when(t.start)), el("td", { class: "num" }, sec(t.duration)),
  el("td", {}, t.http_status || ""), el("td", {}, traceLink(t.trace_id)))));
}

async function viewRoute(params) {
  const window = params.window || "1h";
  let data;
  try { data = await api("api/route", { service: params.service, route: params.route, window }); } catch (error) { failure(error); return; }
  main.replaceChildren(
    el("h2", {}, el("a", { href: "#/routes?window=" + window }, "Routes"), " / ", data.service, " ", el("span", { class: "mono" }, data.route)),
    el("form", { class: "filters" }, windowSelect(window, (w) => {
      location.hash = "#/route?" + new URLSearchParams({ ...params, window: w });
    })),
    el("div", { class: "legend" }, el("span", { style: "color:#4c7bd9" }, "● p50"), el("span", { style: "color:#c98a0b" }, "● p95"),
      el("span", { style: "color:#d2413a" }, "● p99"), el("span", { class: "muted" }, `one point per interval, from ${data.source === "metrics" ? "the metric history" : "the spans"}`)),
    chart(data.points),
    el("div", { class: "flex" },
      el("div", {}, el("h3", {}, "Slowest traces"), traceTable("slowest", data.slowest)),
      el("div", {}, el("h3", {}, "Failing traces"), traceTable("failing", data.failing))));
}

// --- logs ----------------------------------------------------------------------------------

function viewLogs(params) {
  const level = el("select", { name: "level" }, ["", "debug", "info", "warning", "error", "critical"].map(
    (l) => el("option", { value: l }, l || "any level")));
  const text = el("input", { name: "text", placeholder: "filter text", size: 24 });
  level.value = params.level || "";
  text.value = params.text || "";
  const form = el("form", { class: "filters", id: "log-filters" }, field("Level", level), field("Text", text),
    el("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = {};
    if (level.value) query.level = level.value;
    if (text.value) query.text = text.value;
    location.hash = "#/logs?" + new URLSearchParams(query);
  });
  const box = el("div", { class: "logs", id: "log-tail" });
  const status = el("p", { class: "note", id: "tail-status" }, "connecting…");
  main.replaceChildren(el("h2", {}, "Logs (live)"), form, status, box);
  const query = new URLSearchParams();
  if (params.level) query.set("level", params.level);
  if (params.text) query.set("text", params.text);
  tail = new EventSource("api/logs/stream" + (query.toString() ? "?" + query : ""));
  tail.onopen = () => { status.textContent = "live"; };
  tail.onerror = () => { status.textContent = "reconnecting…"; };
  tail.addEventListener("failure", (event) => { status.textContent = JSON.parse(event.data); });
  tail.onmessage = (event) => {
    const line = JSON.parse(event.data);
    const extra = Object.entries(line.fields).filter(([k]) => !["timestamp", "level", "event", "logger", "service", "environment", "trace_id", "span_id"].includes(k))
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
    const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(el("div", { class: "line", "data-level": line.level },
      new Date(line.timestamp * 1000).toLocaleTimeString(), " ",
      el("span", { class: "level " + line.level }, line.level.padEnd(8)), " ",
      line.service || "-", " ", el("strong", {}, line.event), " ",
      line.trace_id ? traceLink(line.trace_id) : "", " ", el("span", { class: "muted" }, extra)));
    while (box.childElementCount > 2000) box.firstElementChild.remove();
    if (stick) box.scrollTop = box.scrollHeight;
  };
}

// --- health --------------------------------------------------------------------------------

async function viewHealth(params) {
  const window = params.window || "1h";
  let data;
  try { data = await api("api/health", { window }); } catch (error) { failure(error); return; }
  main.replaceChildren(el("h2", {}, "Health"),
    el("form", { class: "filters" }, windowSelect(window, (w) => { location.hash = "#/health?window=" + w; })),
    data.checks.length ? el("table", { id: "checks" }, el("tr", {}, el("th", {}, "Check"), el("th", {}, "Last"), el("th", {}, "At"), el("th", {}, "History")),
      data.checks.map((c) => el("tr", {}, el("td", {}, c.check),
        el("td", {}, el("span", { class: "badge" + (c.healthy ? "" : " error") }, c.healthy ? "healthy" : "unhealthy")),
        el("td", {}, when(c.at)),
        el("td", {}, c.history.map((h) => el("span", { class: "health-cell" + (h.healthy ? "" : " bad"), title: when(h.end) }))))))
      : el("p", { class: "note" }, data.note || "No health check results."));
}

// --- routing -------------------------------------------------------------------------------

function route() {
  if (tail) { tail.close(); tail = null; }
  const [path, search] = (location.hash.slice(1) || "/traces").split("?");
  const params = Object.fromEntries(new URLSearchParams(search || ""));
  const parts = path.split("/").filter(Boolean);
  const view = parts[0] || "traces";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active",
    a.dataset.view === view || (view === "trace" && a.dataset.view === "traces") || (view === "route" && a.dataset.view === "routes")));
  main.replaceChildren(el("p", { class: "note" }, "loading…"));
  if (view === "trace" && parts[1]) return viewTrace(parts[1]);
  if (view === "routes") return viewRoutes(params);
  if (view === "route") return viewRoute(params);
  if (view === "logs") return viewLogs(params);
  if (view === "health") return viewHealth(params);
  return viewTraces(params);
}

window.addEventListener("hashchange", route);
route();
