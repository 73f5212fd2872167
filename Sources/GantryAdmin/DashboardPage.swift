/// The dashboard on the admin port (`/`): the request path as a live picture — listeners
/// (the load balancer) → gateway routes → services → pods, with request rates, health and
/// readiness — and replicas over time with the autoscaler's events. One self-contained page
/// that polls the admin API every two seconds; no assets, no build step.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>gantry</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        :root { --bg:#0f1419; --panel:#182029; --line:#2c3a47; --text:#e6edf3; --dim:#8b98a5; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
        * { box-sizing: border-box; }
        body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
        header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; border-bottom:1px solid var(--line); }
        header h1 { font-size:18px; margin:0; } header span { color:var(--dim); }
        main { padding:16px 24px; display:grid; gap:16px; }
        section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
        h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 8px; }
        svg text { fill:var(--text); font-size:12px; } svg .dim { fill:var(--dim); font-size:11px; }
        .box { fill:#1f2a35; stroke:var(--line); } .edge { stroke:#3b4c5c; fill:none; stroke-width:1.5; }
        .edge.hot { stroke:var(--accent); } .ok { fill:var(--ok); } .warn { fill:var(--warn); } .bad { fill:var(--bad); }
        table { border-collapse:collapse; width:100%; } td,th { text-align:left; padding:3px 8px; border-bottom:1px solid var(--line); font-size:12px; }
        th { color:var(--dim); font-weight:500; }
        .legend span { margin-right:14px; color:var(--dim); font-size:12px; } .legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
        </style></head>
        <body>
        <header><h1>gantry</h1><span id="summary">loading…</span><span id="config"></span></header>
        <main>
          <section><h2>Request path</h2><svg id="path" width="100%" height="300"></svg>
            <div class="legend"><span><i style="background:var(--ok)"></i>ready</span><span><i style="background:var(--warn)"></i>starting / unready</span><span><i style="background:var(--bad)"></i>failing / unhealthy</span><span>req/s on the arrows, over the last poll</span></div></section>
          <section><h2>Replicas over time</h2><svg id="chart" width="100%" height="220"></svg></section>
          <section><h2>Events</h2><table id="events"><thead><tr><th>time</th><th>type</th><th>reason</th><th>object</th><th>message</th></tr></thead><tbody></tbody></table></section>
        </main>
        <script>
        const NS = "http://www.w3.org/2000/svg";
        let last = null;  // the previous poll's request counters, for rates
        function el(tag, attrs, text) { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
        async function get(path, text) { const r = await fetch(path); return text ? r.text() : r.json(); }
        function counters(metrics) {  // gantry_requests_total{route,service,code} → totals by route and by service
          const byRoute = {}, byService = {};
          for (const line of metrics.split("\n")) {
            const m = line.match(/^gantry_requests_total\{(.*)\} ([0-9.e+]+)$/); if (!m) continue;
            const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map(x => [x[1], x[2]]));
            const n = Number(m[2]); byRoute[labels.route] = (byRoute[labels.route] || 0) + n; byService[labels.service] = (byService[labels.service] || 0) + n;
          }
          return { byRoute, byService, at: Date.now() };
        }
        function rate(now, key, name) {
          if (!last) return 0; const dt = (now.at - last.at) / 1000; if (dt <= 0) return 0;
          return Math.max(0, ((now[key][name] || 0) - (last[key][name] || 0)) / dt);
        }
        function drawPath(listeners, routes, services, pods, now) {
          const svg = document.getElementById("path"); svg.innerHTML = "";
          const width = svg.clientWidth || 1200, colX = [10, width * 0.22, width * 0.5, width * 0.74], boxW = Math.min(220, width * 0.2);
          const rows = Math.max(listeners.length, routes.length, services.length, 1);
          const podRows = pods.length;
          const height = Math.max(300, 40 + Math.max(rows, podRows) * 44); svg.setAttribute("height", height);
          [["load balancer", 0], ["gateway routes", 1], ["services", 2], ["pods", 3]].forEach(([t, i]) => svg.appendChild(el("text", { x: colX[i], y: 14, class: "dim" }, t)));
          const at = (i, n, count) => 30 + (height - 40) * (i + 0.5) / count - 17;
          const lb = {}, rt = {}, sv = {};
          listeners.forEach((l, i) => { const y = at(i, 0, listeners.length); lb[l.name] = y;
            svg.appendChild(el("rect", { x: colX[0], y, width: boxW, height: 34, rx: 6, class: "box" }));
            svg.appendChild(el("text", { x: colX[0] + 10, y: y + 15 }, l.name + (l.tls ? "  · TLS" : "")));
            svg.appendChild(el("text", { x: colX[0] + 10, y: y + 29, class: "dim" }, `${l.scheme}://${l.address}:${l.port}` + (l.http2 ? " · h2" : "") + (l.redirectTo ? " → " + l.redirectTo : ""))); });
          routes.forEach((r, i) => { const y = at(i, 0, routes.length); rt[r.name] = y;
            for (const l of listeners.filter(l => !l.redirectTo)) svg.appendChild(el("path", { d: `M${colX[0] + boxW},${lb[l.name] + 17} C${colX[1] - 30},${lb[l.name] + 17} ${colX[0] + boxW + 30},${y + 17} ${colX[1]},${y + 17}`, class: "edge" }));
            svg.appendChild(el("rect", { x: colX[1], y, width: boxW, height: 34, rx: 6, class: "box" }));
            svg.appendChild(el("text", { x: colX[1] + 10, y: y + 15 }, r.name));
            svg.appendChild(el("text", { x: colX[1] + 10, y: y + 29, class: "dim" }, (r.policies.length ? r.policies.join(" → ") : "no policies") + ` · ${rate(now, "byRoute", r.name).toFixed(1)} req/s`)); });
          services.forEach((s, i) => { const y = at(i, 0, services.length); sv[s.name] = y;
            for (const r of routes.filter(r => r.service === s.name)) { const hot = rate(now, "byRoute", r.name) > 0;
              svg.appendChild(el("path", { d: `M${colX[1] + boxW},${rt[r.name] + 17} C${colX[2] - 30},${rt[r.name] + 17} ${colX[1] + boxW + 30},${y + 17} ${colX[2]},${y + 17}`, class: "edge" + (hot ? " hot" : "") })); }
            const unhealthy = (s.targets || []).filter(t => !t.healthy).length;
            svg.appendChild(el("rect", { x: colX[2], y, width: boxW, height: 34, rx: 6, class: "box" }));
            svg.appendChild(el("circle", { cx: colX[2] + 12, cy: y + 11, r: 4, class: s.endpoints.length === 0 ? "bad" : unhealthy ? "warn" : "ok" }));
            svg.appendChild(el("text", { x: colX[2] + 22, y: y + 15 }, s.name + (s.clusterIP ? "  " + s.clusterIP : "")));
            svg.appendChild(el("text", { x: colX[2] + 10, y: y + 29, class: "dim" }, `${s.endpoints.length} endpoint(s)` + (s.desiredReplicas != null ? ` · ${s.desiredReplicas} wanted` : "") + (unhealthy ? ` · ${unhealthy} unhealthy` : "") + ` · ${rate(now, "byService", s.name).toFixed(1)} req/s`)); });
          const order = Object.fromEntries(services.map((s, i) => [s.name, i]));
          pods.sort((a, b) => (order[a.service] - order[b.service]) || a.name.localeCompare(b.name));
          const podW = Math.max(boxW, width - colX[3] - 10);
          pods.forEach((p, i) => { const y = at(i, 0, pods.length), sy = sv[p.service];
            if (sy !== undefined) svg.appendChild(el("path", { d: `M${colX[2] + boxW},${sy + 17} C${colX[3] - 30},${sy + 17} ${colX[2] + boxW + 30},${y + 17} ${colX[3]},${y + 17}`, class: "edge" + (p.inFlight > 0 ? " hot" : "") }));
            svg.appendChild(el("rect", { x: colX[3], y, width: podW, height: 34, rx: 6, class: "box" }));
            svg.appendChild(el("circle", { cx: colX[3] + 12, cy: y + 11, r: 4, class: p.ready ? "ok" : (p.reason === "Running" || p.reason === "ContainerCreating" || p.reason === "Starting") ? "warn" : "bad" }));
            svg.appendChild(el("text", { x: colX[3] + 22, y: y + 15 }, p.name));
            svg.appendChild(el("text", { x: colX[3] + 10, y: y + 29, class: "dim" }, `${p.reason} · ${p.address} · ${p.inFlight} in flight · ${p.restarts} restarts`)); });
        }
        function drawChart(history, events) {
          const svg = document.getElementById("chart"); svg.innerHTML = "";
          const width = svg.clientWidth || 1200, height = 220, left = 40, bottom = 24, top = 10;
          if (!history.length) { svg.appendChild(el("text", { x: left, y: 40, class: "dim" }, "no pods yet")); return; }
          const t0 = new Date(history[0].time).getTime(), t1 = Math.max(new Date(history[history.length - 1].time).getTime(), t0 + 60000);
          const maxR = Math.max(2, ...history.map(s => Math.max(s.replicas, s.desired)));
          const x = t => left + (width - left - 10) * (t - t0) / (t1 - t0), y = v => top + (height - top - bottom) * (1 - v / maxR);
          for (let v = 0; v <= maxR; v++) { svg.appendChild(el("line", { x1: left, x2: width - 10, y1: y(v), y2: y(v), stroke: "#22303c" })); svg.appendChild(el("text", { x: 8, y: y(v) + 4, class: "dim" }, v)); }
          const colors = ["#58a6ff", "#d2a8ff", "#3fb950", "#ffa657", "#ff7b72"];
          [...new Set(history.map(s => s.service))].forEach((name, i) => {
            const mine = history.filter(s => s.service === name), color = colors[i % colors.length];
            const points = mine.map(s => `${x(new Date(s.time).getTime())},${y(s.ready)}`).join(" ");
            svg.appendChild(el("polyline", { points, fill: "none", stroke: color, "stroke-width": 2 }));
            svg.appendChild(el("polyline", { points: mine.map(s => `${x(new Date(s.time).getTime())},${y(s.desired)}`).join(" "), fill: "none", stroke: color, "stroke-dasharray": "4 3", opacity: 0.6 }));
            svg.appendChild(el("text", { x: left + 10 + i * 340, y: height - 6, fill: color }, `${name}: ready (solid), wanted (dashed)`));
          });
          for (const e of events.filter(e => e.reason === "SuccessfulRescale")) { const t = new Date(e.time).getTime(); if (t < t0) continue;
            const g = el("g", {}); g.appendChild(el("line", { x1: x(t), x2: x(t), y1: top, y2: height - bottom, stroke: "#d29922", "stroke-dasharray": "2 3" }));
            g.appendChild(el("title", {}, e.message)); svg.appendChild(g); }
        }
        async function poll() {
          try {
            const [listeners, routes, services, pods, events, history, metrics, config] = await Promise.all([
              get("/api/listeners"), get("/api/routes"), get("/api/services"), get("/api/pods"), get("/api/events"), get("/api/history"), get("/metrics", true),
              get("/api/config")]);
            const now = counters(metrics);
            drawPath(listeners, routes, services, pods, now); drawChart(history, events); last = now;
            const ready = pods.filter(p => p.ready).length;
            document.getElementById("summary").textContent = `${listeners.length} listeners · ${routes.length} routes · ${services.length} services · ${ready}/${pods.length} pods ready`;
            const rejected = config.lastRejection ? ` · last rejected ${new Date(config.lastRejection.time).toLocaleTimeString()}: ${config.lastRejection.issues[0]}` : "";
            document.getElementById("config").textContent = `config generation ${config.generation} (${config.hash.slice(0, 12)}, ${config.trigger} at ${new Date(config.appliedAt).toLocaleTimeString()})${rejected}`;
            const body = document.querySelector("#events tbody"); body.innerHTML = "";
            for (const e of events.slice(-12).reverse()) { const tr = document.createElement("tr");
              for (const v of [new Date(e.time).toLocaleTimeString(), e.kind, e.reason, e.object, e.message]) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
              body.appendChild(tr); }
            document.body.dataset.loaded = "true";
          } catch (error) { document.getElementById("summary").textContent = "admin API unreachable: " + error; }
        }
        poll(); setInterval(poll, 2000);
        </script></body></html>
        """#
}
