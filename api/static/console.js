// The console's pages: JSON from the API (same origin, the session cookie), charts by uPlot.
const finsentry = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  const text = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  async function get(path) {
    const answer = await fetch(path, { headers: { "X-CSRF-Token": csrf } });
    if (answer.status === 401) { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; }
    if (!answer.ok) throw new Error(`${path}: ${answer.status}`);
    return answer.json();
  }

  function chart(element, hours) {
    const xs = hours.map((h) => Date.parse(h.hour + "Z") / 1000);
    const data = [xs, hours.map((h) => h.negative), hours.map((h) => h.neutral), hours.map((h) => h.positive),
                  hours.map((h) => h.negative_ratio)];
    const options = {
      width: element.clientWidth - 16, height: 300,
      series: [{}, { label: "negative", stroke: "#c0392b", fill: "rgba(192,57,43,.15)" },
               { label: "neutral", stroke: "#7f8c8d" }, { label: "positive", stroke: "#27ae60" },
               { label: "negative share", stroke: "#8e44ad", dash: [6, 4], scale: "share",
                 value: (u, v) => (v == null ? "-" : pct(v)) }],
      axes: [{}, { label: "events / hour" }, { side: 1, scale: "share", values: (u, vs) => vs.map(pct),
               grid: { show: false } }],
      scales: { share: { range: [0, 1] } },
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
      + `<td>${text((a.fired_at || "").slice(0, 16))}</td><td>${text(Object.entries(a.values).slice(0, 3).map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(2) : v}`).join(", "))}</td></tr>`).join("")
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
      chart(document.getElementById("chart"), hours);
      const risingBody = document.querySelector("#rising tbody");
      if (risingBody) {
        risingBody.innerHTML = rising.map((r) => `<tr><td><a href="/console/scope/${encodeURIComponent(r.scope_key)}">${text(r.scope_key)}</a></td>`
          + `<td class="num up">${pct(r.share)}</td><td class="num">${pct(r.baseline_share)}</td><td class="num">${r.count}</td></tr>`).join("")
          || `<tr><td colspan="4">nothing yet</td></tr>`;
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
    buttons[0].classList.add("on");
    refresh();
    setInterval(refresh, 2000);  // live: the worker writes the roll-ups every batch
  }

  return { overview, csrf };
})();
