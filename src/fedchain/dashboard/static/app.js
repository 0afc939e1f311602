// fedchain dashboard: polls the JSON API and redraws when the view's version changes.
// Everything from the API is untrusted text (a blob's rejection reason, say): it only ever
// goes into the page as text nodes, never as HTML.
"use strict";

const POLL_MS = 400;
const SVG = "http://www.w3.org/2000/svg";
let shown = { version: -1, hash: null };

function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
const $ = (id) => document.getElementById(id);
const fill = (id, ...children) => $(id).replaceChildren(...children);
const tokens = (wei) => (wei / 1e18).toLocaleString("en", { maximumFractionDigits: 4 });
const short = (s) => (s && s.length > 14 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s || "");
const nodeLink = (a) => h("a", { href: `#node=${a}`, title: a, class: "addr" }, short(a));
const cid = (c) => h("code", { title: c }, short(c));
const get = async (path) => {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
};

function route() {
  const m = location.hash.match(/^#(task|node)=(.+)$/);
  return m ? { kind: m[1], id: decodeURIComponent(m[2]) } : { kind: null };
}

async function poll() {
  try {
    const status = await get("/api/status");
    if (status.version !== shown.version || location.hash !== shown.hash) {
      await draw(status);
      shown = { version: status.version, hash: location.hash };
    }
  } catch (e) {
    fill("errors", h("p", {}, `The dashboard server does not answer (${e.message}); retrying.`));
  }
  setTimeout(poll, POLL_MS);
}

async function draw(status) {
  const [tasks, nodes] = await Promise.all([get("/api/tasks"), get("/api/nodes")]);
  const where = status.chain_id === null ? "" : ` · chain ${status.chain_id}, fedchain ${short(status.fedchain)}`;
  fill("source", `${status.source}${where} · block ${status.block ?? "?"}`);
  fill("errors", ...status.errors.map((e) => h("p", {}, `⚠ ${e}`)));
  fill("task-list", ...tasks.map((t) =>
    h("li", {}, h("a", { href: `#task=${t.id}` }, `Task ${t.id}`), ` ${t.decided}/${t.num_rounds} rounds, ${t.status}`)));
  const r = route();
  const taskId = r.kind === "task" ? Number(r.id) : r.kind === null && tasks.length ? tasks[tasks.length - 1].id : null;
  if (taskId !== null && tasks.some((t) => t.id === taskId)) {
    const [task, rounds, lineage] = await Promise.all([
      get(`/api/tasks/${taskId}`), get(`/api/tasks/${taskId}/rounds`), get(`/api/tasks/${taskId}/lineage`)]);
    drawTask(task, rounds, lineage);
  } else {
    $("task").hidden = true;
  }
  drawNodes(nodes);
  const node = r.kind === "node" ? nodes.find((n) => n.address.toLowerCase() === r.id.toLowerCase()) : null;
  $("node").hidden = !node;
  $("nodes").hidden = !!node;
  if (node) drawNode(node);
  document.body.dataset.version = status.version;
  if (!document.body.dataset.drawnMs) document.body.dataset.drawnMs = performance.now().toFixed(1);  // benchmarks/dashboard
}

function facts(id, pairs) {
  fill(id, ...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function drawTask(t, rounds, lineage) {
  $("task").hidden = false;
  fill("task-title", `Task ${t.id}: ${t.status}`);
  let recipe = {};
  try { recipe = JSON.parse(lineage.recipe || "{}"); } catch { recipe = {}; }
  facts("task-facts", [
    ["sponsor", nodeLink(t.sponsor)],
    ["created", `block ${t.created}`],
    ["rounds", `${t.decided} of ${t.num_rounds} decided, ${t.finalized} finalized`],
    ["recipe", recipe.model ? `${recipe.model} on ${recipe.dataset}, rule ${recipe.rule || "fedavg"}` : lineage.error || "-"],
    ["pool", `${tokens(t.pool)} tokens` + (t.reclaimed ? `, ${tokens(t.reclaimed)} reclaimed` : "")],
    ["initial model", cid(t.initial_model)],
  ]);
  drawAccuracy(rounds);
  drawTimeline(rounds);
  drawRounds(rounds);
  drawLineage(lineage);
}

function drawAccuracy(rounds) {
  const pts = rounds.filter((r) => r.evaluation && r.evaluation.accuracy != null)
    .map((r) => [r.round, r.evaluation.accuracy, r.evaluation.loss]);
  fill("accuracy-table", h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "round"),
    h("th", { scope: "col" }, "accuracy"), h("th", { scope: "col" }, "loss"))),
  h("tbody", {}, pts.map(([r, a, l]) => h("tr", {}, h("td", {}, r), h("td", {}, a.toFixed(4)), h("td", {}, l == null ? "-" : l.toFixed(4))))));
  if (!pts.length) {
    fill("accuracy-chart");
    fill("accuracy-caption", "No evaluation published for this task.");
    return;
  }
  const W = 600, H = 200, P = 32, n = Math.max(1, rounds.length - 1);
  const x = (r) => P + (W - 2 * P) * r / n, y = (a) => H - P - (H - 2 * P) * a;
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" },
    [0, 0.5, 1].map((a) => [h("svg:line", { x1: P, x2: W - P, y1: y(a), y2: y(a), class: "grid" }),
      h("svg:text", { x: 2, y: y(a) + 4 }, a.toFixed(1))]),
    h("svg:polyline", { points: pts.map(([r, a]) => `${x(r)},${y(a)}`).join(" "), class: "line" }),
    pts.map(([r, a]) => h("svg:circle", { cx: x(r), cy: y(a), r: 3, class: "dot" }, h("svg:title", {}, `round ${r}: ${a.toFixed(4)}`))),
    h("svg:text", { x: W / 2, y: H - 4, "text-anchor": "middle" }, "round"));
  fill("accuracy-chart", svg);
  const last = pts[pts.length - 1];
  fill("accuracy-caption", `Accuracy after round ${last[0]}: ${last[1].toFixed(4)} (source: ${rounds.find((r) => r.round === last[0]).evaluation.source}).`);
}

const MARK = { finalized: "✓", failed: "✗" };

function drawTimeline(rounds) {
  if (!rounds.length) return fill("timeline-chart");
  const lo = rounds[0].opened, hi = Math.max(...rounds.map((r) => r.challenge_end ?? r.validate_end), ...rounds.map((r) => r.decided || 0));
  const W = 600, row = 14, P = 28, x = (b) => P + (W - P - 4) * (b - lo) / Math.max(1, hi - lo);
  const phases = (r) => [["commit", r.opened, r.commit_end], ["reveal", r.commit_end, r.reveal_end],
    ["vote", r.reveal_end, r.validate_end], ["challenge", r.validate_end, r.challenge_end ?? r.validate_end]];
  fill("timeline-chart", h("svg:svg", { viewBox: `0 0 ${W} ${rounds.length * row + 16}`, class: "chart" },
    rounds.map((r, i) => [h("svg:text", { x: 0, y: i * row + 11 }, r.round),
      phases(r).map(([name, a, b]) => h("svg:rect", { x: x(a), y: i * row + 2, width: Math.max(1, x(b) - x(a)), height: row - 4, class: `ph-${name}` })),
      r.decided ? h("svg:text", { x: x(r.decided) + 2, y: i * row + 11, class: `out-${r.status}` }, MARK[r.status]) : null]),
    h("svg:text", { x: P, y: rounds.length * row + 14 }, `block ${lo}`),
    h("svg:text", { x: W - 4, y: rounds.length * row + 14, "text-anchor": "end" }, `block ${hi}`)));
}

function outcome(r) {
  if (r.status === "finalized") return `✓ finalized at block ${r.decided}` + (r.rejected_count ? `, ${r.rejected_count} rejected` : "");
  if (r.status === "failed") return `✗ failed at block ${r.decided}: ${r.reason}` + (r.reverted ? " (reverted)" : "");
  return `… ${r.status}`;
}

function drawRounds(rounds) {
  const head = ["round", "blocks: open / commit / reveal / vote / challenge", "commits", "reveals", "committee (seat bps)", "votes", "outcome", "model", "slashes in its blocks"];
  fill("rounds", h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rounds.map((r) => {
      const agree = (v) => (r.quorum && v.vote === r.quorum.vote ? "with the quorum" : "dissent");
      return h("tr", { "data-round": r.round, "data-status": r.status, class: `st-${r.status}` },
        h("th", { scope: "row" }, r.round),
        h("td", {}, `${r.opened} / ${r.commit_end} / ${r.reveal_end} / ${r.validate_end} / ${r.challenge_end ?? "?"}`),
        h("td", {}, r.commits.length),
        h("td", {}, r.reveals.length),
        h("td", {}, h("ul", {}, r.committee.map((c) => h("li", {}, nodeLink(c.validator), ` ${c.weight}`)))),
        h("td", {}, h("ul", {}, r.votes.map((v) => h("li", {}, nodeLink(v.validator), ` @${v.block} ${agree(v)}`
          + (r.equivocated.includes(v.validator) ? " (equivocated)" : ""))))),
        h("td", { class: "outcome" }, outcome(r)),
        h("td", {}, r.model_cid ? cid(r.model_cid) : "-"),
        h("td", {}, r.slashes.length ? h("ul", {}, r.slashes.map((s) => h("li", {}, nodeLink(s.node), ` ${tokens(s.amount)}: ${s.reason} @${s.block}`))) : "-"));
    })));
}

function drawLineage(lin) {
  fill("lineage-initial", "Initial model ", cid(lin.initial), lin.error ? h("strong", { class: "err" }, ` ⚠ ${lin.error}`) : "");
  fill("lineage-list", ...lin.versions.slice().reverse().map((v) => h("li", { "data-round": v.round },
    h("p", {}, `Round ${v.round}: `, cid(v.parent), " → ", cid(v.model), v.rule ? ` (${v.rule})` : ""),
    v.error ? h("p", { class: "err" }, `⚠ ${v.error}`) : null,
    v.contributors ? h("p", {}, "Contributors (score): ", v.contributors.length ? v.contributors.map((c, i) => [i ? ", " : "", nodeLink(c.node), ` ${c.score.toLocaleString("en")}`]) : "none") : null,
    v.rejected && v.rejected.length ? h("p", {}, "Rejected: ", v.rejected.map((c, i) => [i ? "; " : "", nodeLink(c.node), `: ${c.reason}`])) : null)));
}

function drawNodes(nodes) {
  const head = ["address", "role", "stake", "rewards", "withdrawn", "pending", "slashed"];
  fill("node-table", h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, nodes.map((n) => h("tr", { "data-address": n.address },
      h("th", { scope: "row" }, nodeLink(n.address)), h("td", {}, n.role), h("td", { class: "num" }, tokens(n.stake)),
      h("td", { class: "num" }, tokens(n.rewards)), h("td", { class: "num" }, tokens(n.withdrawn)),
      h("td", { class: "num" }, n.pending === undefined ? "-" : tokens(n.pending)),
      h("td", { class: "num" }, n.slashed ? `${tokens(n.slashed)} (${n.slashes.length}×)` : "0")))));
}

function drawNode(n) {
  fill("node-title", `Node ${n.address}`);
  facts("node-facts", [["role", n.role], ["stake", tokens(n.stake)], ["rewards claimed", tokens(n.rewards)],
    ["withdrawn", tokens(n.withdrawn)], ["slashed", `${tokens(n.slashed)} in ${n.slashes.length} slash(es)`]]);
  fill("node-history", h("thead", {}, h("tr", {}, ["block", "task", "round", "what"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, n.history.map((e) => h("tr", {}, h("td", {}, e.block), h("td", {}, e.task ?? "-"), h("td", {}, e.round ?? "-"),
      h("td", {}, e.amount === null ? e.what : `${e.what}: ${tokens(e.amount)} tokens`)))));
}

window.addEventListener("hashchange", () => { shown.hash = null; });
poll();
