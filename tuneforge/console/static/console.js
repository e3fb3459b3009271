// tuneforge console: the little behaviour the pages need. Everything from the server is put on the page with
// textContent or setAttribute, never innerHTML: names and model outputs are text, whatever they contain.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; } catch (e) { return response.statusText; }
}

// ---- tables: filter rows as you type (the form's Filter button asks the server) ----------------------------------
function setupFilters() {
  for (const input of document.querySelectorAll("[data-filter-table]")) {
    const table = document.getElementById(input.dataset.filterTable);
    if (!table) continue;
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      for (const row of Array.from(table.rows).slice(1)) {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      }
    });
  }
}

// ---- create a job: ranges per base model, the validator's report ------------------------------------------------
function setupJobForm() {
  const form = document.getElementById("job-form");
  if (!form) return;
  const data = JSON.parse(document.getElementById("hp-ranges").textContent);
  const base = document.getElementById("base-model");
  const showRanges = () => {
    const table = data.ranges[data.families[base.value] || "default"];
    for (const small of form.querySelectorAll("[data-range]")) {
      const key = small.dataset.range, input = form.querySelector(`[data-hp="${key}"]`), r = table[key];
      input.disabled = !r;
      if (!r) { small.textContent = "not taken by this model"; input.placeholder = ""; continue; }
      input.placeholder = r.default === null ? "decided by the job" : String(r.default);
      small.textContent = r.low === r.high ? `only ${r.low}` : `${r.low} to ${r.high}`;
    }
  };
  base.addEventListener("change", showRanges);
  showRanges();
  document.getElementById("validate").addEventListener("click", async () => {
    const report = document.getElementById("report");
    report.replaceChildren(el("p", "Checking the data with the base model's tokenizer..."));
    const response = await fetch(form.dataset.validate, {method: "POST", body: new FormData(form), headers: {"X-CSRF-Token": csrf()}});
    if (!response.ok) { report.replaceChildren(el("p", await errorText(response), "error")); return; }
    const r = await response.json();
    const summary = `${r.records} records, ${r.tokens} tokens, longest ${r.maxRecordTokens} tokens; record limit ${r.limit}.`;
    const items = [el("p", r.ok ? `The data is valid: ${summary}` : `${r.problemCount} problem(s): ${summary}`, r.ok ? "ok" : "error")];
    const list = el("ol");
    for (const problem of r.problems) list.append(el("li", problem));
    if (r.problems.length) items.push(list);
    if (r.problemCount > r.problems.length) items.push(el("p", `... and ${r.problemCount - r.problems.length} more`));
    report.replaceChildren(...items);
  });
}

// ---- a job's page: poll its status every 2 s, draw the loss curves ------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function drawLoss(chart, training, validation) {
  const W = 600, H = 260, L = 50, R = 10, T = 10, B = 30;
  const all = training.concat(validation);
  if (!all.length) { chart.replaceChildren(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}, "no training step yet")); return; }
  const steps = all.map((p) => p[0]), losses = all.map((p) => p[1]);
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
  let y0 = Math.min(...losses), y1 = Math.max(...losses);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const x = (s) => L + (s - x0) / (x1 - x0) * (W - L - R), y = (v) => T + (y1 - v) / (y1 - y0) * (H - T - B);
  const nodes = [svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}), svg("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}),
    svg("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, y1.toFixed(3)), svg("text", {x: L - 4, y: H - B, "text-anchor": "end"}, y0.toFixed(3)),
    svg("text", {x: L, y: H - 8}, `step ${x0}`), svg("text", {x: W - R, y: H - 8, "text-anchor": "end"}, `step ${x1}`)];
  if (training.length) nodes.push(svg("polyline", {points: training.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "), class: "train"}));
  for (const p of validation) nodes.push(svg("circle", {cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 3, class: "valid"}));
  chart.replaceChildren(...nodes);
}

function setupJobPage() {
  const live = document.getElementById("job-live");
  if (!live) return;
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  const tick = async () => {
    let r;
    try {
      const response = await fetch(live.dataset.statusUrl, {headers: {"Accept": "application/json"}});
      if (!response.ok) { text("job-stages", await errorText(response)); return setTimeout(tick, 2000); }
      r = await response.json();
    } catch (e) { return setTimeout(tick, 2000); }  // the server restarting: try again
    const status = document.getElementById("job-status");
    status.textContent = r.status; status.className = `status-${r.status}`;
    const p = r.progress;
    document.getElementById("job-progress").value = r.status === "Completed" ? 100 : p.percent;
    text("job-step", p.totalSteps ? `step ${p.step}/${p.totalSteps}, epoch ${p.epoch ?? "?"}/${p.epochs ?? "?"}` : (p.phase || ""));
    text("job-stages", Object.entries(r.stages).map(([k, v]) => `${k} ${v}`).join(", "));
    text("job-tps", p.tokensPerSecond ? Math.round(p.tokensPerSecond) : "-");
    text("job-eta", p.etaSeconds !== null && p.etaSeconds !== undefined && !r.terminal ? `${Math.round(p.etaSeconds)} s` : "-");
    text("job-loss", typeof p.trainingLoss === "number" ? p.trainingLoss.toFixed(4) : "-");
    if (r.customModel) {
      const link = el("a", r.customModel);
      link.href = `${live.dataset.prefix}/custom-models/${encodeURIComponent(r.customModel)}`;
      document.getElementById("job-model").replaceChildren(link);
    }
    const failure = document.getElementById("job-failure");
    failure.hidden = !r.failure; failure.textContent = r.failure || "";
    text("job-log", r.log || "(the job has written no log yet)");
    const chosen = Object.entries(r.chosen);
    if (chosen.length) {  // what "auto" became, once the job has read its data
      const table = document.getElementById("chosen-table");
      const rows = chosen.map(([k, c]) => { const tr = el("tr"); tr.append(el("td", k), el("td", c.value), el("td", c.reason)); return tr; });
      table.replaceChildren(table.rows[0], ...rows);
    }
    drawLoss(document.getElementById("loss-chart"), r.training, r.validation);
    live.dataset.terminal = String(r.terminal);
    if (r.terminal) { const stop = document.getElementById("stop-form"); if (stop) stop.hidden = true; }
    else setTimeout(tick, 2000);
  };
  tick();
}

// ---- playground: one streamed chat per pane, the same prompt to each ----------------------------------------------
function setupPlayground() {
  const form = document.getElementById("playground");
  if (!form) return;
  const histories = new Map();
  const panes = Array.from(form.querySelectorAll(".pane"));
  for (const pane of panes) {
    pane.querySelector(".pane-model").addEventListener("change", () => { histories.delete(pane); pane.querySelector(".transcript").replaceChildren(); });
  }
  document.getElementById("clear").addEventListener("click", () => {
    histories.clear();
    for (const pane of panes) { pane.querySelector(".transcript").replaceChildren(); pane.querySelector(".tokens").textContent = ""; }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const prompt = form.prompt.value;
    if (!prompt.trim()) return;
    const params = {temperature: Number(form.temperature.value), top_p: Number(form.top_p.value), max_tokens: Number(form.max_tokens.value),
      stop: form.stop.value.split("\n").filter((s) => s !== "")};
    for (const pane of panes) {
      const model = pane.querySelector(".pane-model").value;
      if (model) ask(form.dataset.url, pane, model, prompt, params, histories);
    }
    form.prompt.value = "";
  });
}

async function ask(url, pane, model, prompt, params, histories) {
  const history = histories.get(pane) || [];
  history.push({role: "user", content: prompt});
  histories.set(pane, history);
  const transcript = pane.querySelector(".transcript"), tokens = pane.querySelector(".tokens");
  transcript.append(el("div", prompt, "user"));
  const answer = el("div", "", "assistant streaming");
  transcript.append(answer);
  const body = {model, messages: history, ...params};
  const details = el("details"); details.append(el("summary", "request body"), el("pre", JSON.stringify(body, null, 2)));
  transcript.append(details);
  tokens.textContent = "";
  let text = "";
  try {
    const response = await fetch(url, {method: "POST", body: JSON.stringify(body), headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()}});
    if (!response.ok) throw new Error(await errorText(response));
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 1);
        if (line.text) { text += line.text; answer.textContent = text; }
        if (line.error) throw new Error(line.error);
        if (line.done) tokens.textContent = `${line.promptTokens} prompt tokens, ${line.completionTokens} completion tokens (${line.stopReason})`;
      }
    }
    history.push({role: "assistant", content: text});
  } catch (err) {
    history.pop();
    answer.append(el("span", ` [${err.message}]`, "error"));
  } finally {
    answer.classList.remove("streaming");
    answer.classList.add("done");
  }
}

// a list with something Creating or Updating reloads itself until it settles
function setupReload() {
  const busy = document.querySelector("[data-reload]");
  if (busy) setTimeout(() => location.reload(), Number(busy.dataset.reload));
}

function setupConfirm() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => { if (!confirm(form.dataset.confirm)) e.preventDefault(); });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupFilters(); setupJobForm(); setupJobPage(); setupPlayground(); setupConfirm(); setupReload();
});
