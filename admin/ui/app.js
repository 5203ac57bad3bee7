// swrproxy admin page. No framework, no inline script (the page's CSP forbids it); every value
// from the server is written with textContent, never as HTML (keys are chosen by clients).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

// el builds an element with text and attributes.
function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function bytes(n) {
  if (n === undefined || n === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}
const pct = (r) => (r === undefined || r === null ? "—" : (r * 100).toFixed(1) + " %");
const num = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString());
function secs(s) {
  const a = Math.abs(s);
  const out = a >= 3600 ? Math.floor(a / 3600) + "h " + Math.floor((a % 3600) / 60) + "m"
    : a >= 60 ? Math.floor(a / 60) + "m " + (a % 60) + "s" : a + "s";
  return out;
}
const freshFor = (s) => (s < 0 ? "stale " + secs(s) : secs(s));

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

// api fetches a JSON endpoint; state changes carry the CSRF token.
async function api(method, url, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  if (res.status === 401) {
    window.location.assign("/_swr/ui/login");
    throw new Error("not logged in");
  }
  if (res.status === 403) {
    banner("Session expired or token missing: reload the page.");
  }
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  return { status: res.status, data };
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// --- dashboard ---

function drawChart(points) {
  const svg = $("#chart");
  // the drawing's width is the element's, so that text keeps its proportions
  const W = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 720), H = 200, L = 40, R = 44, T = 10, B = 22;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const nodes = [];
  const line = (x1, y1, x2, y2, cls) => {
    const l = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, v);
    l.setAttribute("class", cls);
    return l;
  };
  const text = (x, y, s, anchor, cls) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x); t.setAttribute("y", y);
    t.setAttribute("text-anchor", anchor); t.setAttribute("class", cls || "axis");
    t.textContent = s;
    return t;
  };
  const maxRPS = Math.max(1, ...points.map((p) => p.rps));
  for (let i = 0; i <= 4; i++) {
    const y = T + ((H - T - B) * i) / 4;
    nodes.push(line(L, y, W - R, y, "grid"));
    nodes.push(text(L - 4, y + 4, (maxRPS * (1 - i / 4)).toFixed(maxRPS < 10 ? 1 : 0), "end"));
    nodes.push(text(W - R + 4, y + 4, Math.round(100 * (1 - i / 4)) + "%", "start"));
  }
  nodes.push(text(L, H - 4, "−15 min", "start"));
  nodes.push(text(W - R, H - 4, "now", "end"));
  if (points.length === 0) {
    nodes.push(text(W / 2, H / 2, "collecting samples…", "middle", "empty"));
  } else {
    const slots = 180;
    const x = (i) => W - R - ((points.length - 1 - i) * (W - L - R)) / (slots - 1);
    const yR = (v) => T + (H - T - B) * (1 - v / maxRPS);
    const yH = (v) => T + (H - T - B) * (1 - v);
    for (const [cls, y, key] of [["rps", yR, "rps"], ["ratio", yH, "hit_ratio"]]) {
      const pl = document.createElementNS(SVG, "polyline");
      const pts = points.map((p, i) => x(i).toFixed(1) + "," + y(p[key]).toFixed(1));
      if (pts.length === 1) pts.push((W - R) + "," + y(points[0][key]).toFixed(1));
      pl.setAttribute("points", pts.join(" "));
      pl.setAttribute("class", cls);
      nodes.push(pl);
    }
  }
  svg.replaceChildren(...nodes);
}

async function refreshDashboard() {
  let r;
  const failed = (why) => { $("#updated").textContent = "update failed (" + why + ") at " + new Date().toLocaleTimeString(); };
  try { r = await api("GET", "/_swr/ui/api/dashboard"); } catch (e) { failed(e.message || "network"); return; }
  if (r.status !== 200 || !r.data) { failed("status " + r.status); return; }
  if (r.status === 200) banner("");
  const d = r.data, c = d.counters || {};
  const points = (d.series && d.series.points) || [];
  const last = points[points.length - 1];
  $("#c-rps").textContent = last ? last.rps.toFixed(1) : "—";
  $("#c-ratio").textContent = last ? pct(last.hit_ratio) : "—";
  $("#c-hits").textContent = num(c.hits_l1) + " / " + num(c.hits_l2);
  $("#c-misses").textContent = num(c.misses);
  $("#c-stale").textContent = num(c.stale_served);
  $("#c-origin").textContent = num(c.origin_requests);
  $("#c-errors").textContent = num(c.origin_errors);
  $("#c-queue").textContent = num(c.refresh_queue);
  $("#c-redis").textContent = !d.redis || !d.redis.configured ? "off" : d.redis.circuit === "open" ? "circuit open" : "ok";
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  drawChart(points);
  fillRows($("#fleet tbody"), (d.fleet || []).map((f) => {
    const tr = el("tr");
    tr.append(el("td", f.instance), el("td", num(f.l1_objects)), el("td", bytes(f.l1_bytes)), el("td", pct(f.hit_ratio)), el("td", f.rps.toFixed(1)));
    return tr;
  }));
  fillRows($("#backends tbody"), (d.backends || []).map((b) => {
    const tr = el("tr");
    const state = el("td");
    state.append(el("span", b.state, { class: "badge " + (b.state === "up" ? "up" : "down") }));
    tr.append(el("td", b.url, { class: "key" }), state, el("td", num(b.failures)), el("td", num(b.in_flight)));
    return tr;
  }));
}

// --- keys ---

let keyPrefix = "", keyNext = "";

async function searchKeys(after) {
  const q = "/_swr/keys?limit=50&prefix=" + encodeURIComponent(keyPrefix) + (after ? "&after=" + encodeURIComponent(after) : "");
  const r = await api("GET", q);
  const tbody = $("#keys tbody");
  if (r.status !== 200 || !r.data) {
    fillRows(tbody, [el("tr").appendChild(el("td", (r.data && r.data.error) || "error " + r.status, { colspan: "8" })).parentNode]);
    return;
  }
  fillRows(tbody, r.data.keys.map((k) => {
    const tr = el("tr");
    tr.dataset.key = k.key;
    const actions = el("td", null, { class: "actions" });
    const details = el("button", "Details", { type: "button", class: "details small quiet" });
    details.addEventListener("click", () => showKey(k.key));
    const purge = el("button", "Clear", { type: "button", class: "purge small danger" });
    purge.addEventListener("click", () => {
      $("#inv-kind").value = "key"; $("#inv-value").value = k.key; $("#inv-mode").value = "clear";
      askInvalidate();
    });
    actions.append(details, purge);
    tr.append(el("td", k.key, { class: "key" }), el("td", k.variants), el("td", bytes(k.bytes)), el("td", secs(k.age_seconds)),
      el("td", freshFor(k.fresh_for_seconds)), el("td", (k.tags || []).join(" ")), el("td", num(k.hits)), actions);
    return tr;
  }));
  if (r.data.keys.length === 0) {
    const tr = el("tr");
    tr.append(el("td", "no cached key starts with this prefix", { colspan: "8", class: "muted" }));
    fillRows(tbody, [tr]);
  }
  keyNext = r.data.next || "";
  $("#keys-next").hidden = !keyNext;
}

async function showKey(key) {
  const box = $("#key-detail");
  box.hidden = false;
  const r = await api("GET", "/_swr/key?key=" + encodeURIComponent(key));
  const nodes = [el("h3", key)];
  if (r.status !== 200 || !r.data) {
    nodes.push(el("p", (r.data && r.data.error) || "error " + r.status, { class: "error" }));
    box.replaceChildren(...nodes);
    return;
  }
  nodes.push(el("p", num(r.data.hits) + " hits on this instance", { class: "muted" }));
  r.data.variants.forEach((v, i) => {
    nodes.push(el("h3", "Variant " + (i + 1)));
    const dl = el("dl");
    const row = (k, val) => dl.append(el("dt", k), el("dd", val));
    row("Status", v.status);
    row("Size", bytes(v.bytes));
    row("Age", secs(v.age_seconds));
    row("Fresh for", freshFor(v.fresh_for_seconds));
    row("Stale windows", "while revalidating " + secs(v.stale_while_revalidate_seconds) + ", if error " + secs(v.stale_if_error_seconds));
    row("ETag", v.etag + (v.etag_generated ? " (computed)" : ""));
    row("Tags", (v.tags || []).join(" ") || "—");
    if (v.vary) row("Varies on", Object.entries(v.vary).map(([n, val]) => n + ": " + val).join("; "));
    for (const [n, val] of v.headers || []) row(n, val);
    nodes.push(dl);
  });
  box.replaceChildren(...nodes);
}

// --- actions ---

let pending = null; // what confirm-yes runs

function confirmThen(text, run) {
  pending = run;
  $("#confirm-text").textContent = text;
  $("#confirm").hidden = false;
  $("#confirm-yes").focus();
}

function showResult(status, data) {
  const p = $("#action-result");
  p.hidden = false;
  p.classList.toggle("error", status !== 200);
  if (!data) { p.textContent = "error " + status; return; }
  if (data.error) { p.textContent = data.error + " (" + status + ")"; return; }
  if ("matched" in data) {
    p.textContent = data.mode + ": matched " + data.matched + ", cleared " + data.cleared + ", refreshing " + data.refreshing +
      "; " + data.acknowledged + "/" + data.instances + " instances acknowledged" + (data.complete ? "" : " (incomplete)");
  } else {
    p.textContent = "warmed " + num(data.keys) + (data.keys === 1 ? " key, " : " keys, ") + bytes(data.bytes) + " in " + data.duration_ms + " ms";
  }
}

function askInvalidate() {
  const kind = $("#inv-kind").value, value = $("#inv-value").value, mode = $("#inv-mode").value;
  if (!value) { $("#inv-value").focus(); return; }
  const field = { key: "keys", prefix: "prefixes", tag: "tags" }[kind];
  const what = { clear: "Clear", refresh: "Refresh", auto: "Refresh the hot, clear the cold of" }[mode];
  confirmThen(what + " the " + kind + " \u201c" + value + "\u201d on every instance?", async () => {
    const r = await api("POST", "/_swr/invalidate", { [field]: [value], mode });
    showResult(r.status, r.data);
    if (r.status === 200) searchKeys();
  });
}

function init() {
  $("#key-form").addEventListener("submit", (e) => { e.preventDefault(); keyPrefix = $("#key-prefix").value; searchKeys(); });
  $("#keys-next").addEventListener("click", () => searchKeys(keyNext));
  $("#invalidate-form").addEventListener("submit", (e) => { e.preventDefault(); askInvalidate(); });
  $("#populate").addEventListener("click", () => confirmThen("Load the fleet's hot keys from Redis into this instance's memory?", async () => {
    const r = await api("POST", "/_swr/populate");
    showResult(r.status, r.data);
  }));
  $("#confirm-yes").addEventListener("click", async () => {
    $("#confirm").hidden = true;
    const run = pending;
    pending = null;
    if (run) await run();
  });
  $("#confirm-no").addEventListener("click", () => { $("#confirm").hidden = true; pending = null; });
  drawChart([]);
  refreshDashboard();
  setInterval(refreshDashboard, 5000);
}

init();
