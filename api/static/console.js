// The console's pages: JSON from the API (same origin, the session cookie), charts by uPlot.
const finsentry = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  const text = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  // Every link to the outside goes through here. Crawled URLs are hostile, and rows stored before the
  // contract checked them may hold javascript:, data: or a scheme hidden behind spaces and controls:
  // the browser's own parser decides the scheme, and the href is what it parsed, never the raw text.
  function link(url, label) {
    if (typeof url !== "string" || /[\s\u0000-\u001f\u007f]/.test(url)) return text(label);
    let parsed;
    try { parsed = new URL(url); } catch { return text(label); }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return text(label);
    return `<a href="${text(parsed.href)}" rel="noopener noreferrer nofollow" target="_blank">${text(label)}</a>`;
  }

  async function get(path) {
    const answer = await fetch(path, { headers: { "X-CSRF-Token": csrf } });
    if (answer.status === 401) { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; }
    if (!answer.ok) throw new Error(`${path}: ${answer.status}`);
    return answer.json();
  }

  const SPANS = { hour: 3600, day: 86400, week: 7 * 86400, month: 30 * 86400, year: 365 * 86400 };
  const number = (v) => (typeof v !== "number" ? v : Number.isInteger(v) ? String(v) : v.toFixed(3));

  function chart(element, hours, range, height = 300, width = element.clientWidth - 16) {
    const xs = hours.map((h) => Date.parse(h.start + "Z") / 1000);
    const data = [xs, hours.map((h) => h.negative), hours.map((h) => h.neutral), hours.map((h) => h.positive),
                  hours.map((h) => h.negative_ratio)];
    const options = {
      width, height,
      series: [{}, { label: "negative", stroke: "#c0392b", fill: "rgba(192,57,43,.15)" },
               { label: "neutral", stroke: "#7f8c8d" }, { label: "positive", stroke: "#27ae60" },
               { label: "negative share", stroke: "#8e44ad", dash: [6, 4], scale: "share",
                 value: (u, v) => (v == null ? "-" : pct(v)) }],
      axes: [{}, { label: range === "hour" ? "events / minute" : "events / hour" }, { side: 1, scale: "share", size: 64, values: (u, vs) => vs.map(pct),
               grid: { show: false } }],
      scales: { share: { range: [0, 1] },
                // The whole range always shows, however few hours have events yet.
                x: { time: true, range: () => [Date.now() / 1000 - SPANS[range], Date.now() / 1000] } },
    };
    element.innerHTML = "";
    return new uPlot(options, data, element);
  }

  function figures(hours) {
    const sum = (k) => hours.reduce((a, h) => a + h[k], 0);
    const count = sum("count");
    const cells = [["events", count.toLocaleString()], ["negative", pct(count ? sum("negative") / count : 0)],
                   ["neutral", pct(count ? sum("neutral") / count : 0)], ["positive", pct(count ? sum("positive") / count : 0)],
                   ["mean score", (count ? sum("score_sum") / count : 0).toFixed(3)]];
    document.getElementById("figures").innerHTML =
      cells.map(([k, v]) => `<div class="figure">${k}<b data-figure="${k}">${v}</b></div>`).join("");
  }

  function alertRows(alerts) {
    return alerts.map((a) => `<tr><td>${text(a.rule)}</td><td><a href="/console/scope/${encodeURIComponent(a.scope_key)}">${text(a.scope_key)}</a></td>`
      + `<td>${text((a.fired_at || "").slice(0, 16).replace("T", " "))}</td><td>${text(["count", "negative", "negative_ratio"].map((k) => `${k} ${number(a.values[k])}`).join(", "))}</td></tr>`).join("")
      || `<tr><td colspan="4">none</td></tr>`;
  }

  function overview(scopeKey) {
    let range = "day";
    const buttons = document.querySelectorAll(".ranges button");
    async function refresh() {
      const key = encodeURIComponent(scopeKey);
      const [hours, rising, firing] = await Promise.all([
        get(`/trends/${key}?range=${range}`), document.getElementById("rising") ? get(`/trends?range=${range}`) : [],
        get("/alerts?state=firing")]);
      figures(hours);
      chart(document.getElementById("chart"), hours, range);
      const grid = document.getElementById("topics");
      if (grid) {
        const topics = await get(`/trends-by-topic?range=${range}`);
        const series = await Promise.all(topics.map((t) => get(`/trends/${encodeURIComponent(t.scope_key)}?range=${range}`)));
        grid.innerHTML = topics.map((t, i) => `<div class="chart"><h3><a href="/console/scope/${encodeURIComponent(t.scope_key)}">${text(t.scope_key.slice(6))}</a>`
          + ` · ${t.count} events · ${pct(t.negative_ratio)} negative</h3><div data-topic="${i}"></div></div>`).join("")
          || "<p>no topics yet</p>";
        topics.forEach((t, i) => {
          const box = grid.querySelector(`[data-topic="${i}"]`);
          chart(box, series[i], range, 160, grid.clientWidth / 3 - 40);
        });
      }
      const risingBody = document.querySelector("#rising tbody");
      if (risingBody) {
        risingBody.innerHTML = rising.map((r) => `<tr><td><a href="/console/scope/${encodeURIComponent(r.scope_key)}">${text(r.scope_key)}</a></td>`
          + `<td class="num up">${pct(r.share)}</td><td class="num">${pct(r.baseline_share)}</td><td class="num">${r.count}</td></tr>`).join("")
          || `<tr><td colspan="4">nothing yet</td></tr>`;
      }
      const itemsBody = document.querySelector("#items tbody");
      if (itemsBody) {
        const items = await get(`/trends/${key}/items?limit=30`);
        itemsBody.innerHTML = items.map((i) => `<tr><td>${text(i.event_time.slice(0, 19).replace("T", " "))}</td>`
          + `<td class="${i.sentiment === "negative" ? "up" : ""}">${text(i.sentiment)}</td><td>${text(i.topic || "")}</td>`
          + `<td>${text(i.text)}</td><td>${text(i.model_version)}</td>`
          + `<td>${i.url ? link(i.url, i.source || "link") : text(i.source || "")}</td></tr>`).join("")
          || `<tr><td colspan="6">nothing scored yet</td></tr>`;
      }
      const mine = scopeKey === "global:all" ? firing : firing.filter((a) => a.scope_key === scopeKey);
      document.querySelector("#firing tbody").innerHTML = alertRows(mine);
      document.getElementById("updated").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    }
    buttons.forEach((b) => b.addEventListener("click", () => {
      range = b.dataset.range;
      buttons.forEach((o) => o.classList.toggle("on", o === b));
      refresh();
    }));
    buttons.forEach((b) => b.classList.toggle("on", b.dataset.range === range));
    refresh();
    setInterval(refresh, 2000);  // live: the worker writes the roll-ups every batch
  }

  async function send(method, path, body) {
    const answer = await fetch(path, { method, headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
                                       body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(data.detail || data.message || `${answer.status}`);
    return data;
  }

  function alertsPage(canAct) {
    let state = "firing", chosen = null;
    const buttons = document.querySelectorAll(".ranges button");
    async function showDetail(id) {
      chosen = id;
      const d = await get(`/alerts/${encodeURIComponent(id)}`);
      const a = d.alert;
      document.querySelectorAll("#alerts tr").forEach((r) => r.classList.toggle("chosen", r.dataset.id === id));
      const figures = Object.entries(a.values).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${number(v)}`).join(" · ");
      const actions = canAct ? `<div class="detail-actions">
          <button id="ack" ${a.acknowledged_by ? "disabled" : ""}>${a.acknowledged_by ? `acknowledged by ${text(a.acknowledged_by)}` : "Acknowledge"}</button>
          <label>Silence for <select id="duration"><option value="60">1 h</option><option value="240">4 h</option><option value="1440">1 day</option></select></label>
          <input id="comment" placeholder="why (comment)"><button id="silence">Silence</button></div>` : "";
      document.getElementById("detail").innerHTML = `<h2>${text(a.rule)} · ${text(a.scope_key)} · ${text(a.state)}</h2>
        <p>${text(figures)}</p>${actions}<h2>Evidence</h2>
        ${d.evidence.map((e) => `<blockquote>${text(e.text)}${e.url ? ` ${link(e.url, "source")}` : ""}</blockquote>`).join("") || "<p>none sent yet</p>"}
        <h2>Notifications</h2><table><thead><tr><th>receiver</th><th>kind</th><th>status</th><th>attempts</th><th>error</th></tr></thead><tbody>
        ${d.notifications.map((n) => `<tr><td>${text(n.receiver)}</td><td>${text(n.kind)}</td><td>${text(n.status)}</td><td class="num">${n.attempts}</td><td>${text(n.last_error || "")}</td></tr>`).join("") || `<tr><td colspan="5">none</td></tr>`}
        </tbody></table>`;
      if (!canAct) return;
      document.getElementById("ack").onclick = async () => { await send("POST", `/alerts/${encodeURIComponent(id)}/ack`); showDetail(id); refresh(); };
      document.getElementById("silence").onclick = async () => {
        await send("POST", "/silences", { matchers: { scope_key: a.scope_key, rule: a.rule },
          minutes: Number(document.getElementById("duration").value), comment: document.getElementById("comment").value });
        document.getElementById("comment").value = "silenced";
      };
    }
    async function refresh() {
      const alerts = await get(`/alerts?state=${state}`);
      document.querySelector("#alerts tbody").innerHTML = alerts.map((a) => `<tr data-id="${text(a.id)}" class="${a.id === chosen ? "chosen" : ""}">
        <td>${text(a.rule)}</td><td>${text(a.scope_key)}</td><td>${text(a.state)}</td>
        <td class="num">${a.values.negative_ratio === undefined ? "" : pct(a.values.negative_ratio)}</td>
        <td>${text((a.fired_at || "").slice(0, 16))}</td><td>${a.acknowledged_by ? "✓ " + text(a.acknowledged_by) : ""}</td></tr>`).join("")
        || `<tr><td colspan="6">no ${state} alerts</td></tr>`;
      document.querySelectorAll("#alerts tr[data-id]").forEach((r) => { r.onclick = () => showDetail(r.dataset.id); });
      document.getElementById("updated").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    }
    buttons.forEach((b) => b.addEventListener("click", () => {
      state = b.dataset.state; buttons.forEach((o) => o.classList.toggle("on", o === b)); refresh();
    }));
    buttons[0].classList.add("on");
    const wanted = new URLSearchParams(location.search).get("alert");
    refresh().then(() => wanted && showDetail(wanted));
    setInterval(refresh, 3000);
  }

  function predicted(item) {
    const heads = ["sentiment", "topic"].filter((h) => item.prediction[h]).map((h) => {
      const p = item.prediction[h];
      const odds = Object.entries(p.probabilities || {}).sort((a, b) => b[1] - a[1]).slice(0, 3)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(" · ");
      return `${h}: <b>${text(p.label)}</b> (${text(odds)})`;
    });
    return `model ${text(item.model_version)} says ${heads.join("; ")}`;
  }

  function reviewPage(canLabel) {
    let items = [], done = [];
    const status = document.getElementById("status");
    const names = { 1: "negative", 2: "neutral", 3: "positive" };
    async function load() {
      items = await get("/review?limit=100");
      show();
    }
    function show() {
      const item = items[0];
      document.getElementById("remaining").textContent = `${items.length} open`;
      document.getElementById("item").innerHTML = item ? `<div data-item="${item.id}">${text(item.text)}</div>
        <div class="meta">${predicted(item)} · unsure on ${text(item.head)} (top-two margin ${item.margin.toFixed(3)})</div>`
        : "<p>The queue is empty.</p>";
    }
    document.addEventListener("keydown", async (event) => {
      if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT") return;
      const item = items[0];
      try {
        if (names[event.key] && item) {
          if (!canLabel) { status.textContent = "viewers cannot label"; return; }
          const topic = document.getElementById("topic").value || null;
          await send("POST", `/review/${item.id}/label`, { sentiment: names[event.key], topic });
          done.push(item); items.shift(); status.textContent = `labelled ${names[event.key]}`; show();
        } else if (event.key === "s" && item) {
          items.push(items.shift()); status.textContent = "skipped"; show();
        } else if (event.key === "u" && done.length) {
          const last = done.pop();
          await send("POST", `/review/${last.id}/reopen`);
          items.unshift(last); status.textContent = "undone"; show();
        }
      } catch (error) { status.textContent = `refused: ${error.message}`; }
    });
    load();
    document.getElementById("import").addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await fetch("/labels/import", { method: "POST", headers: { "X-CSRF-Token": csrf },
                                                     body: new FormData(event.target) });
      const r = await answer.json();
      const report = document.getElementById("report");
      if (!answer.ok) { report.innerHTML = `<p class="error">refused: ${text(r.detail || r.message || answer.status)}</p>`; return; }
      report.innerHTML = `<p>${r.stored.inserted} new, ${r.stored.updated} relabelled, ${r.stored.unchanged} unchanged;`
        + ` ${r.error_count} rows refused</p>` + (r.errors.length ? `<table><thead><tr><th>line</th><th>field</th><th>reason</th></tr></thead><tbody>`
        + r.errors.map((e) => `<tr><td class="num">${e.line}</td><td>${text(e.field || "")}</td><td>${text(e.reason)}</td></tr>`).join("")
        + "</tbody></table>" : "");
    });
  }

  function modelsPage(isAdmin) {
    const status = document.getElementById("status");
    const f1 = (m, where, head) => { const r = (m.metrics[where] || {})[head]; return r && r.macro_f1 !== undefined ? r.macro_f1.toFixed(4) : ""; };
    async function refresh() {
      const models = await get("/models");
      document.querySelector("#models tbody").innerHTML = models.map((m) => `<tr data-version="${text(m.version)}"><td>${text(m.version)}</td><td>${text(m.status)}</td>
        <td>${text(m.parent || "")}</td><td class="num">${f1(m, "frozen", "topic")}</td><td class="num">${f1(m, "frozen", "sentiment")}</td>
        <td class="num">${f1(m, "train", "topic")}</td><td class="num">${f1(m, "train", "sentiment")}</td>
        <td class="num">${m.data.new_labels ?? ""}</td><td>${text(m.served || "")}${m.served_because ? `<br><small class="hint">${text(m.served_because)}</small>` : ""}</td><td>${text(m.decision)}</td>
        <td>${isAdmin && m.status !== "champion" ? `<button data-promote="${text(m.version)}">Promote</button>` : ""}</td></tr>`).join("")
        || `<tr><td colspan="11">no models registered</td></tr>`;
      document.querySelectorAll("tr[data-version]").forEach((row) => {
        row.onclick = () => curve(models.find((m) => m.version === row.dataset.version));
      });
      if (models.length) curve(models[0]);
      const runs = await get("/models/runs");
      document.querySelector("#runs tbody").innerHTML = runs.map((r) => `<tr><td>${text(r.started_at.slice(0, 16).replace("T", " "))}</td>`
        + `<td>${text(r.status)}</td><td>${text(r.version || "")}</td><td>${text(r.detail)}</td></tr>`).join("")
        || `<tr><td colspan="4">no runs yet</td></tr>`;
      document.querySelectorAll("[data-promote]").forEach((b) => { b.onclick = async () => {
        if (!confirm(`Serve ${b.dataset.promote} to every worker now?`)) return;
        try { await send("POST", `/models/${encodeURIComponent(b.dataset.promote)}/promote`); status.textContent = `${b.dataset.promote} promoted`; }
        catch (error) { status.textContent = `refused: ${error.message}`; }
        refresh();
      }; });
    }
    function curve(model) {
      const history = model.metrics.history || [];
      document.getElementById("curve-title").textContent = `Training curve of ${model.version}`
        + (history.length ? "" : " (none recorded: registered by hand)");
      const box = document.getElementById("curve");
      box.innerHTML = "";
      if (!history.length) return;
      new uPlot({ width: box.clientWidth - 16, height: 240, scales: { x: { time: false }, score: { range: [0, 1] } },
        series: [{ label: "epoch" }, { label: "training loss", stroke: "#c0392b" },
                 { label: "validation score", stroke: "#27ae60", scale: "score" }],
        axes: [{ label: "epoch" }, { label: "loss" }, { side: 1, scale: "score", grid: { show: false } }] },
        [history.map((h) => h.epoch), history.map((h) => h.train_loss), history.map((h) => h.valid_score)], box);
    }
    const rollback = document.getElementById("rollback");
    if (rollback) rollback.onclick = async () => {
      if (!confirm("Roll back to the previous champion?")) return;
      try { const m = await send("POST", "/models/rollback"); status.textContent = `rolled back to ${m.version}`; }
      catch (error) { status.textContent = `refused: ${error.message}`; }
      refresh();
    };
    refresh();
  }

  function search() {
    const box = document.getElementById("search"), list = document.getElementById("found");
    if (!box) return;
    let timer = null;
    box.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const q = box.value.trim();
        const found = q ? await get(`/watchlist?q=${encodeURIComponent(q)}`) : [];
        list.innerHTML = found.map((c) => `<li><a href="/console/scope/${encodeURIComponent(c.scope_key)}">${text(c.name)}`
          + ` <small>${text([...c.tickers, ...c.aliases].join(" · "))}</small></a></li>`).join("");
      }, 150);
    });
  }
  search();

  // The page says what it is in data- attributes: the CSP allows no inline script to say it.
  const { page, role, scope } = document.body.dataset;
  const starts = {
    overview: () => overview(scope || "global:all"),
    alerts: () => alertsPage(role !== "viewer"),
    review: () => reviewPage(role !== "viewer"),
    models: () => modelsPage(role === "admin"),
  };
  if (starts[page]) starts[page]();

  return { overview, alertsPage, reviewPage, modelsPage, link, csrf };
})();
