// The umh operations console: plain JavaScript, no build step.
// The list and the detail come from the JSON API; the worker's server-sent events
// (/api/events) say when something changed, and the page refetches what is on screen,
// debounced. The list endpoint gathers every worker's households, so a refresh on any event
// also shows the households of workers this page is not connected to.
"use strict";

const state = { selected: null, showAll: false, rows: [], lastIds: new Set(), held: new Set() };

// ------------------------------------------------------------------ formatting

const moneyFmt = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const qtyFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });
const money = (v) => (v === null || v === undefined ? "—" : moneyFmt.format(v));
const qty = (v) => (v === null || v === undefined ? "—" : qtyFmt.format(v));
const pct = (w, digits = 2) => (w === null || w === undefined ? "—" : (w * 100).toFixed(digits) + "%");
const signedPct = (d) => (d > 0 ? "+" : d < 0 ? "−" : "") + (Math.abs(d) * 100).toFixed(2) + "%";
const clock = (d) => d.toTimeString().slice(0, 8);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.setAttribute("style", value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// "hh-1:2026-11-25:3" -> "2026-11-25 #3" (the list has the household already)
const shortId = (hid, rid) => {
  if (!rid) return "—";
  const rest = rid.startsWith(hid + ":") ? rid.slice(hid.length + 1) : rid;
  const at = rest.lastIndexOf(":");
  return at > 0 ? `${rest.slice(0, at)} #${rest.slice(at + 1)}` : rest;
};
const chips = (classes, cls = "chip") => classes.map((c) => el("span", { class: cls }, c));

// ------------------------------------------------------------------ the list

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
  return body;
}

async function loadList() {
  const url = "/api/households" + (state.showAll ? "?limit=500" : "?out_of_band=true&limit=500");
  let body;
  try {
    body = await getJSON(url);
  } catch (err) {
    showNote("Could not load households: " + err.message);
    return;
  }
  showNote(body.unavailable && body.unavailable.length
    ? "Not answering: " + body.unavailable.join(", ") + " (their households are missing)" : "");
  renderList(body.households);
}

function showNote(text) {
  const note = document.getElementById("list-note");
  note.textContent = text;
  note.hidden = !text;
}

function renderList(rows) {
  const tbody = document.querySelector("#households tbody");
  const seen = state.lastIds;
  tbody.replaceChildren(...rows.map((row) => {
    const tr = el("tr", {
      "data-household": row.household_id,
      class: [row.household_id === state.selected ? "selected" : "",
              seen.size && !seen.has(row.household_id) ? "flash" : ""].join(" ").trim() || null,
      onclick: () => select(row.household_id),
    },
      el("td", {}, el("span", { class: "hid" }, row.household_id)),
      el("td", { class: "num" }, pct(row.max_abs_drift)),
      el("td", {}, row.out_of_band.length ? chips(row.out_of_band) : el("span", { class: "chip ok" }, "in band")),
      el("td", { class: "mono rid", title: row.open_rebalance_id || "no orders waiting for fills" },
        shortId(row.household_id, row.open_rebalance_id)));
    return tr;
  }));
  state.lastIds = new Set(rows.map((r) => r.household_id));
  state.rows = rows;
  const outCount = rows.filter((r) => r.out_of_band.length).length;
  document.getElementById("count").textContent = String(outCount);
  document.getElementById("list-title").firstChild.textContent =
    state.showAll ? "Households " : "Households out of band ";
  const empty = document.getElementById("empty");
  empty.hidden = rows.length > 0;
  empty.textContent = state.showAll ? "This deployment has no household yet." : "No household is out of band.";
}

// ------------------------------------------------------------------ the detail

function select(householdId) {
  if (location.hash !== "#/h/" + encodeURIComponent(householdId)) {
    location.hash = "#/h/" + encodeURIComponent(householdId);
  } else {
    route();
  }
}

function route() {
  const match = location.hash.match(/^#\/h\/(.+)$/);
  state.selected = match ? decodeURIComponent(match[1]) : null;
  for (const tr of document.querySelectorAll("#households tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.household === state.selected);
  }
  if (state.selected) loadDetail(true);
  else {
    document.getElementById("household").hidden = true;
    document.getElementById("placeholder").hidden = false;
  }
}

async function loadDetail(fresh) {
  const id = state.selected;
  if (!id) return;
  let body;
  try {
    body = await getJSON("/api/households/" + encodeURIComponent(id));
  } catch (err) {
    if (id !== state.selected) return;
    showDetail(id, el("div", {}, el("h2", {}, id), el("p", { class: "error" }, err.message)), null);
    return;
  }
  if (id !== state.selected) return;
  state.held = new Set(body.accounts.flatMap((a) => a.holdings.map((x) => x.symbol)));
  // the what-if panel is built once per household, so a live refresh never eats an edit
  const panel = document.getElementById("whatif");
  const keep = !fresh && panel && panel.dataset.household === id;
  showDetail(id, renderDetail(body), keep ? panel : whatIf(body));
}

function showDetail(id, live, whatif) {
  const box = document.getElementById("household");
  box.replaceChildren(...[live, whatif].filter(Boolean));
  box.hidden = false;
  document.getElementById("placeholder").hidden = true;
}

function card(label, value, cls) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label),
    el("div", { class: "value " + (cls || "") }, value));
}

function renderDetail(h) {
  const out = h.out_of_band || [];
  return el("div", { "data-household": h.household_id },
    el("div", { class: "detail-head" },
      el("h2", {}, h.household_id),
      el("span", { class: "served" }, "answered by " + (h.served_by || "this worker"))),
    el("div", { class: "cards" },
      card("Investable value", money(h.value)),
      card("As of", h.as_of),
      card("Mode", h.mode),
      card("Max drift", pct(h.max_abs_drift), out.length ? "bad" : ""),
      card("Out of band", out.length ? out.join(", ") : "none", out.length ? "bad" : "")),
    h.missing_prices && h.missing_prices.length
      ? el("p", { class: "note" }, "Waiting for prices of " + h.missing_prices.join(", ")) : null,
    controlsLine(h),
    el("h3", {}, "Drift by class, against its band"),
    driftTable(h),
    el("h3", {}, "Accounts"),
    el("div", { class: "accounts" }, h.accounts.map(accountCard)),
    el("h3", {}, "Open rebalance"),
    h.open_rebalance ? rebalanceBlock(h.open_rebalance) : el("p", { class: "muted" }, "None: no orders are waiting for fills."),
    el("h3", {}, "Last rebalance"),
    h.last_rebalance ? rebalanceBlock(h.last_rebalance) : el("p", { class: "muted" }, "None yet."));
}

function controlsLine(h) {
  const c = h.controls || {}, r = h.realized_this_year || {};
  const facts = [
    "realized this year: short-term " + money(r.short_term_gain) + ", long-term " + money(r.long_term_gain),
    "yearly gain budget " + (c.max_realized_gain_year === null || c.max_realized_gain_year === undefined ? "none" : money(c.max_realized_gain_year)),
    "per-rebalance budget " + (c.max_realized_gain === null || c.max_realized_gain === undefined ? "none" : money(c.max_realized_gain)),
    c.allow_sells === false ? "cash flows only (no sells)" : "sells allowed",
    "turnover cap " + (c.max_turnover === null || c.max_turnover === undefined ? "none" : pct(c.max_turnover)),
    c.defer_short_term_days ? `short-term gains deferred ${c.defer_short_term_days} days` : null,
    c.locked_lots ? `${c.locked_lots} locked lot(s)` : null,
  ].filter(Boolean);
  return el("p", { class: "controls", "data-controls": "" }, facts.map((f) => el("span", { class: "chip neutral" }, f)));
}

function driftTable(h) {
  const classes = Object.keys(h.drift || {});
  if (!classes.length) return el("p", { class: "muted" }, "No drift yet (prices missing).");
  let scale = 0.02;
  for (const c of classes) scale = Math.max(scale, Math.abs(h.drift[c]), h.tolerance[c]);
  scale *= 1.15;
  const at = (x) => 50 + (x / scale) * 50; // percent of the track
  const rows = classes.map((c) => {
    const d = h.drift[c], tol = h.tolerance[c];
    const isOut = h.out_of_band.includes(c);
    const left = Math.min(at(0), at(d)), width = Math.abs(at(d) - at(0));
    return el("tr", { class: isOut ? "out" : null, "data-class": c },
      el("td", { class: "cls" }, c),
      el("td", { class: "num" }, pct(h.weights[c])),
      el("td", { class: "num" }, pct(h.target[c] || 0)),
      el("td", { class: "num" }, signedPct(d)),
      el("td", { class: "num" }, "±" + pct(tol)),
      el("td", { class: "bar-cell" },
        el("div", { class: "track", title: `drift ${signedPct(d)}, band ±${pct(tol)}` },
          el("div", { class: "band", style: `left:${at(-tol)}%;width:${at(tol) - at(-tol)}%` }),
          el("div", { class: "zero", style: `left:${at(0)}%` }),
          el("div", { class: "fill" + (isOut ? " out" : ""), style: `left:${left}%;width:${Math.max(width, 0.4)}%` }))));
  });
  return el("div", {},
    el("table", { class: "drift" },
      el("thead", {}, el("tr", {}, el("th", {}, "Class"), el("th", { class: "num" }, "Weight"),
        el("th", { class: "num" }, "Target"), el("th", { class: "num" }, "Drift"),
        el("th", { class: "num" }, "Band"), el("th", {}, "Drift against band"))),
      el("tbody", {}, rows)),
    el("div", { class: "legend" },
      el("span", { class: "sw", style: "background:var(--band)" }), "band (target ± tolerance)",
      el("span", { class: "sw", style: "background:var(--ok)" }), "drift inside",
      el("span", { class: "sw", style: "background:var(--bad)" }), "drift out of band"));
}

function accountCard(a) {
  return el("div", { class: "account" },
    el("div", { class: "account-head" },
      el("b", {}, a.account_id), el("span", { class: "type" }, a.type.replace("_", " ")),
      el("b", {}, money(a.value))),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Symbol"), el("th", {}, "Class"),
        el("th", { class: "num" }, "Qty"), el("th", { class: "num" }, "Price"), el("th", { class: "num" }, "Value"))),
      el("tbody", {},
        a.holdings.map((x) => el("tr", {},
          el("td", { class: "mono", title: x.lots.map((l) => `${l.lot_id}: ${qty(l.quantity)} since ${l.acquired}, basis ${money(l.cost_basis)}${l.locked ? " (locked)" : ""}`).join("\n") }, x.symbol),
          el("td", {}, x.asset_class || Object.entries(x.exposures).map(([c, s]) => `${c} ${pct(s, 0)}`).join(", ")),
          el("td", { class: "num" }, qty(x.quantity)),
          el("td", { class: "num" }, money(x.price)),
          el("td", { class: "num" }, money(x.value)))),
        el("tr", {}, el("td", { class: "mono" }, "cash"), el("td", {}, "cash"), el("td", {}), el("td", {}),
          el("td", { class: "num" }, money(a.cash))))),
    el("div", { class: "account-foot" },
      "By class: ", Object.entries(a.by_class).map(([c, v]) => el("span", { class: "chip neutral" }, `${c} ${money(v)}`)),
      a.cash_needed ? el("span", { class: "chip" }, "cash needed " + money(a.cash_needed)) : null));
}

function ordersTable(orders) {
  if (!orders.length) return el("p", { class: "muted" }, "No orders.");
  return el("table", { class: "orders" },
    el("thead", {}, el("tr", {}, el("th", {}, "Side"), el("th", {}, "Symbol"), el("th", {}, "Account"),
      el("th", { class: "num" }, "Qty"), el("th", { class: "num" }, "Est. price"), el("th", { class: "num" }, "Est. value"),
      el("th", {}, "Reason"), el("th", {}, "Lots relieved"))),
    el("tbody", {}, orders.map((o) => el("tr", { "data-order": o.order_id },
      el("td", { class: "side-" + o.side }, o.side),
      el("td", { class: "mono" }, o.symbol),
      el("td", { class: "mono" }, o.account_id),
      el("td", { class: "num" }, qty(o.quantity)),
      el("td", { class: "num" }, money(o.est_price)),
      el("td", { class: "num" }, money(o.est_value)),
      el("td", {}, el("span", { class: "chip reason reason-" + o.reason }, o.reason.replaceAll("_", " "))),
      el("td", { class: "mono" }, (o.lots || []).map((l) => `${l.lot_id} × ${qty(l.quantity)}`).join(", ") || "—")))));
}

function rebalanceBlock(r) {
  const realized = r.realized || {};
  return el("div", { class: "rebalance" },
    el("div", { class: "rebalance-head" },
      el("span", { class: "chip " + (r.status === "rebalanced" || r.status === "no_action" ? "ok" : "") }, r.status),
      el("span", { class: "rid" }, r.rebalance_id || "—"),
      el("span", { class: "facts" }, "as of ", el("b", {}, r.as_of || "—")),
      el("span", { class: "facts" }, "turnover ", el("b", {}, pct(r.turnover))),
      el("span", { class: "facts" }, "short-term gain ", el("b", {}, money(realized.short_term_gain))),
      el("span", { class: "facts" }, "long-term gain ", el("b", {}, money(realized.long_term_gain))),
      el("span", { class: "facts" }, "tax ", el("b", {}, money(realized.tax_cost)))),
    ordersTable(r.orders || []),
    (r.messages || []).length ? el("ul", { class: "messages" }, r.messages.map((m) => el("li", {}, m))) : null,
    (r.errors || []).length ? el("ul", { class: "messages" }, r.errors.map((e) => el("li", {}, `${e.path}: ${e.message}`))) : null);
}

// ------------------------------------------------------------------ what-if

function whatIf(h) {
  const input = el("textarea", { id: "whatif-input", spellcheck: "false" });
  input.value = JSON.stringify(h.snapshot, null, 2);
  const result = el("div", { id: "whatif-result" });
  const button = el("button", { id: "whatif-solve", type: "button" }, "Solve");
  const reset = el("button", { type: "button", class: "secondary" }, "Reset to live snapshot");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      result.replaceChildren(await solve(input.value));
    } finally {
      button.disabled = false;
    }
  });
  reset.addEventListener("click", () => loadDetail(true));
  return el("section", { class: "whatif", id: "whatif", "data-household": h.household_id },
    el("h3", {}, "What if: solve this snapshot (publishes nothing)"),
    input,
    el("div", { class: "actions" }, button, reset,
      el("span", { class: "muted" }, "Edit the snapshot, then solve. The API token (top right) is sent when set.")),
    result);
}

async function solve(text) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const token = document.getElementById("token").value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  let response, body;
  try {
    response = await fetch("/api/solve", { method: "POST", headers, body: text });
    body = await response.json();
  } catch (err) {
    return el("p", { class: "error" }, "The solve failed: " + err.message);
  }
  if (body.error) return el("p", { class: "error" }, `${response.status}: ${body.error}`);
  return rebalanceBlock(body);
}

// ------------------------------------------------------------------ live events

// Run `fn` `waitMs` after the first of a burst of events, at most once per `minGapMs`; an event
// that arrives while `fn` runs schedules one more run (its change may have missed this one).
function throttle(fn, waitMs, minGapMs) {
  let timer = null, running = false, again = false, last = 0;
  const schedule = () => {
    const delay = Math.max(waitMs, last + minGapMs - Date.now());
    timer = setTimeout(async () => {
      timer = null;
      running = true;
      last = Date.now();
      try { await fn(); } finally {
        running = false;
        if (again) { again = false; schedule(); }
      }
    }, delay);
  };
  return () => {
    if (running) again = true;
    else if (!timer) schedule();
  };
}

const refreshList = throttle(loadList, 300, 1500);
const refreshDetail = throttle(() => loadDetail(false), 300, 1500);

function logEvent(kind, householdId, text) {
  const list = document.getElementById("events");
  const link = el("a", { onclick: () => select(householdId) }, householdId);
  list.prepend(el("li", {}, el("time", {}, clock(new Date())),
    el("span", { class: "kind " + kind }, kind === "alert" ? "alert" : "orders"), link, " ", text));
  while (list.children.length > 60) list.lastChild.remove();
  document.getElementById("no-events").hidden = true;
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    live.className = "live on";
    live.textContent = "live";
    refreshList();
  });
  source.addEventListener("error", () => {
    live.className = "live off";
    live.textContent = "reconnecting…";
  });
  source.addEventListener("hello", (e) => {
    const worker = JSON.parse(e.data).worker;
    live.title = "live updates from " + worker;
  });
  source.addEventListener("households", (e) => {
    const data = JSON.parse(e.data);
    refreshList();
    if (state.selected && (data.households.some((r) => r.household_id === state.selected)
        || data.removed.includes(state.selected))) refreshDetail();
  });
  source.addEventListener("prices", (e) => {
    refreshList();
    const symbols = JSON.parse(e.data).symbols || [];
    if (state.selected && symbols.some((s) => state.held.has(s))) refreshDetail();
  });
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    const classes = (a.breaches || []).map((b) => b.asset_class).join(", ");
    logEvent("alert", a.household_id, `${a.action.replaceAll("_", " ")} · max drift ${pct(a.max_abs_drift)}${classes ? " · " + classes : ""}`);
    refreshList();
    if (a.household_id === state.selected) refreshDetail();
  });
  source.addEventListener("orders", (e) => {
    const r = JSON.parse(e.data);
    const reasons = [...new Set((r.orders || []).map((o) => o.reason.replaceAll("_", " ")))].join(", ");
    logEvent("orders", r.household_id, `${(r.orders || []).length} orders · ${reasons} · tax ${money((r.realized || {}).tax_cost)}`);
    refreshList();
    if (r.household_id === state.selected) refreshDetail();
  });
}

// ------------------------------------------------------------------ start

function start() {
  const token = document.getElementById("token");
  token.value = sessionStorage.getItem("umh-token") || "";
  token.addEventListener("change", () => sessionStorage.setItem("umh-token", token.value));
  document.getElementById("show-all").addEventListener("change", (e) => {
    state.showAll = e.target.checked;
    state.lastIds = new Set();
    loadList();
  });
  window.addEventListener("hashchange", route);
  loadList().then(route);
  connect();
  // a safety net for changes on other workers that send this worker no event (their fills)
  setInterval(loadList, 30000);
}

start();
