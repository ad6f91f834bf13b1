// The map: region outlines, today's incidents, the incident panel, the rule tester, the feed.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("desk-config").textContent);
  const S = config.strings;
  const ar = config.locale === "ar";
  const COLORS = {
    airstrike: "#d62728", shelling: "#ff7f0e", barrel_bomb: "#8c564b", missile: "#9467bd",
    explosion: "#e377c2", building_collapse: "#7f7f7f", fire: "#bcbd22", chemical: "#17becf",
    other: "#1f77b4",
  };
  const map = L.map("map", { preferCanvas: true, attributionControl: false, zoomSnap: 0.25 });
  map.setView([36.0, 37.0], 8);
  const outlines = L.layerGroup().addTo(map);
  const markers = L.layerGroup().addTo(map);
  const byId = new Map(); // incident id -> {row, marker}
  let columns = [];
  let testMarker = null;
  window.desk = { map, byId, ready: false, rendered: 0, renderMs: 0, feedEvents: 0 };

  const legend = document.getElementById("legend");
  legend.innerHTML = Object.entries(COLORS).map(([k, c]) =>
    `<span><i style="background:${c}"></i>${esc(S["kind_" + k] || k)}</span>`).join("");

  function filters() {
    const form = document.getElementById("filters");
    return Object.fromEntries([...new FormData(form)].filter(([, v]) => v));
  }
  function restoreFilters() {
    const params = new URLSearchParams(location.search);
    const form = document.getElementById("filters");
    for (const [k, v] of params) if (form.elements[k]) form.elements[k].value = v;
  }

  function radius(killed, injured, trapped) {
    return Math.min(16, 3 + 1.4 * Math.sqrt(killed * 3 + injured + trapped));
  }
  function rowOf(r) { return Object.fromEntries(columns.map((c, i) => [c, r[i]])); }

  function place(inc) {
    const old = byId.get(inc.id);
    if (old) markers.removeLayer(old.marker);
    if (inc.lat == null || inc.lon == null) { byId.set(inc.id, { row: inc, marker: null }); return; }
    const retracted = inc.live_reports === 0;
    const marker = L.circleMarker([inc.lat, inc.lon], {
      radius: radius(inc.killed, inc.injured, inc.trapped),
      color: "#222", weight: inc.confirmed ? 2 : 1, opacity: retracted ? 0.3 : 0.9,
      fillColor: COLORS[inc.kind] || "#333", fillOpacity: retracted ? 0.15 : 0.7,
      dashArray: retracted ? "3" : null,
    });
    marker.incidentId = inc.id;
    marker.bindTooltip(`${esc(S["kind_" + inc.kind] || inc.kind)} · ${S.killed} ${inc.killed} · ${S.injured} ${inc.injured} · ${S.trapped} ${inc.trapped}`);
    marker.on("click", (ev) => { L.DomEvent.stopPropagation(ev); showIncident(inc.id); });
    marker.addTo(markers);
    byId.set(inc.id, { row: inc, marker });
  }

  async function loadOutlines() {
    const res = await fetch("/desk/api/regions.geojson", { credentials: "same-origin" });
    const geo = await res.json();
    const weight = { 1: 2.5, 2: 1.6 };
    const layer = L.geoJSON(geo, {
      style: (f) => ({ color: f.properties.depth <= 2 ? "#2d3e50" : "#7a8896", weight: weight[f.properties.depth] || 0.8,
                       fill: !f.properties.parent, fillColor: "#f8fafc", fillOpacity: 0.85 }),
      onEachFeature: (f, l) => l.bindTooltip(ar ? f.properties.name_ar : f.properties.name, { sticky: true }),
    });
    layer.addTo(outlines);
    // Fit the governorates when there are several, else everything drawn.
    const second = geo.features.filter((f) => f.properties.depth === 2);
    const fit = L.geoJSON({ type: "FeatureCollection", features: second.length > 1 ? second : geo.features });
    const bounds = fit.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10] });
  }

  async function loadIncidents() {
    const params = new URLSearchParams(filters());
    history.replaceState(null, "", "/desk/?" + params.toString());
    const res = await fetch("/desk/api/incidents?" + params, { credentials: "same-origin" });
    if (!res.ok) return;
    const data = await res.json();
    columns = data.columns;
    const t0 = performance.now();
    markers.clearLayers();
    byId.clear();
    for (const r of data.incidents) place(rowOf(r));
    window.desk.renderMs = performance.now() - t0;
    window.desk.rendered = data.incidents.length;
    const capped = document.getElementById("capped");
    capped.hidden = !data.capped;
    capped.textContent = S.capped.replace("{n}", data.cap);
    shown();
  }

  function shown() {
    document.getElementById("shown").textContent = `${S.incidents_shown}: ${byId.size}`;
  }

  function matchesFilters(ev) {
    const f = filters();
    if (f.kind && f.kind !== ev.kind) return false;
    return true; // region, team and time are checked on the next full load
  }

  async function showIncident(id) {
    const res = await fetch("/desk/api/incidents/" + encodeURIComponent(id), { credentials: "same-origin" });
    if (!res.ok) return;
    const inc = await res.json();
    const f = inc.in_force;
    const counts = ["killed", "injured", "trapped", "rescued"].map((k) =>
      `<tr><th>${S[k]}</th><td><b>${f[k].value}</b></td><td class="muted">${esc(f[k].from.join(", "))}${f[k].tier ? ` · ${esc(f[k].tier)}` : ""}${f[k].high > f[k].value ? ` · ${esc(S.up_to)} ${f[k].high}` : ""}</td></tr>`).join("");
    const reports = inc.reports.map((r) => `
      <li class="${r.live ? "" : "retracted"}"><b dir="ltr">${esc(r.source)}/${esc(r.id)}</b>
        <ol class="revisions">${r.revisions.map((v) => `<li>r${v.revision} · ${esc(v.status)} ·
          ${S.killed} ${v.casualties.killed}, ${S.injured} ${v.casualties.injured}, ${S.trapped} ${v.casualties.trapped}
          · <time datetime="${esc(v.received_at)}"></time> · ${esc(v.key)}${v.notes ? " · " + esc(v.notes) : ""}</li>`).join("")}</ol></li>`).join("");
    const panel = document.getElementById("panel");
    document.getElementById("panel-body").innerHTML = `
      <h2 id="incident-title">${esc(S["kind_" + inc.kind] || inc.kind)} · ${esc(ar ? inc.region.name_ar : inc.region.name)}</h2>
      <p class="muted"><time datetime="${esc(inc.occurred_at)}"></time> · ${inc.confirmed ? S.confirmed : S.unconfirmed} · <code dir="ltr">${esc(inc.id)}</code></p>
      <h3>${S.in_force}</h3><table class="counts">${counts}</table>
      <h3>${S.reports} (${inc.reports.length})</h3><ul class="reports">${reports}</ul>`;
    deskTimes(panel);
    panel.hidden = false;
  }
  document.getElementById("panel-close").addEventListener("click", () => { document.getElementById("panel").hidden = true; });

  async function tester(latlng) {
    const form = document.getElementById("tester-form");
    if (latlng) {
      form.elements.lat.value = latlng.lat.toFixed(5);
      form.elements.lon.value = latlng.lng.toFixed(5);
      if (testMarker) map.removeLayer(testMarker);
      testMarker = L.marker(latlng).addTo(map);
    }
    if (!form.elements.lat.value) return;
    const params = new URLSearchParams(new FormData(form));
    const res = await fetch("/desk/api/test?" + params, { credentials: "same-origin" });
    const data = await res.json();
    const out = document.getElementById("tester-result");
    if (!res.ok) { out.innerHTML = `<p class="error">${esc(problemText(data))}</p>`; return; }
    const region = data.region;
    const routes = data.routes.map((r) => `
      <li class="route"><div><b>${S.route_path}:</b> <code dir="ltr">${r.path.map(esc).join(" › ")}</code>${r.immediate ? " ⚡" : ""}</div>
      <div><b>${S.receiver}:</b> <span class="receiver">${esc(r.receiver_name)}</span> <code dir="ltr">${esc(r.receiver)}</code></div>
      <div><b>${S.leaders}:</b> ${r.leaders.map((l) => `<span class="leader">${esc(l.name)}</span> <small dir="ltr">(${esc(l.id)})</small>`).join(", ") || S.none}</div></li>`).join("");
    out.innerHTML = `<p><b>${S.region}:</b> <span id="test-region">${esc(ar ? region.name_ar : region.name)}</span> <code dir="ltr">${esc(region.id)}</code>
      <span class="muted" dir="ltr">${esc(region.path.join(" › "))}</span></p>
      ${routes ? `<ol class="routes">${routes}</ol>` : `<p>${S.no_route}</p>`}`;
  }
  map.on("click", (ev) => tester(ev.latlng));
  document.getElementById("tester-form").addEventListener("submit", (ev) => { ev.preventDefault(); tester(null); });

  // The live feed: Server-Sent Events; the browser resends Last-Event-ID when it reconnects.
  const feedList = document.getElementById("feed");
  const feedState = document.getElementById("feed-state");
  const refresh = new Map();
  function feedItem(ev) {
    const li = document.createElement("li");
    li.className = "outcome-" + ev.outcome;
    li.dataset.incident = ev.incident || "";
    li.innerHTML = `<span class="tag">${esc(S["outcome_" + ev.outcome] || ev.outcome)}</span>
      ${esc(S["kind_" + ev.kind] || ev.kind)} · ${esc(ar ? ev.region_name_ar : ev.region_name)}
      · ${S.killed} ${ev.casualties.killed} · ${S.injured} ${ev.casualties.injured} · ${S.trapped} ${ev.casualties.trapped}
      <small class="muted" dir="ltr">${esc(ev.source)}/${esc(ev.report)} r${ev.revision}</small>
      <time datetime="${esc(ev.at)}">${esc(localTime(ev.at))}</time>`;
    if (ev.incident) li.addEventListener("click", () => showIncident(ev.incident));
    feedList.prepend(li);
    while (feedList.children.length > 200) feedList.lastChild.remove();
  }
  async function refreshIncident(id) {
    const res = await fetch("/desk/api/incidents/" + encodeURIComponent(id), { credentials: "same-origin" });
    if (!res.ok) return;
    const inc = await res.json();
    const f = inc.in_force;
    place({ id: inc.id, kind: inc.kind, occurred_at: inc.occurred_at, region: inc.region.id,
      lat: inc.location && inc.location.lat, lon: inc.location && inc.location.lon,
      killed: f.killed.value, injured: f.injured.value, trapped: f.trapped.value, rescued: f.rescued.value,
      confirmed: inc.confirmed, live_reports: inc.live_reports });
  }
  function onReport(ev) {
    window.desk.feedEvents += 1;
    feedItem(ev);
    if (!ev.incident || ["duplicate", "stale", "conflict"].includes(ev.outcome) || !matchesFilters(ev)) return;
    if (ev.outcome === "new" && !byId.has(ev.incident)) {
      place({ id: ev.incident, kind: ev.kind, occurred_at: ev.occurred_at, region: ev.region, lat: ev.lat, lon: ev.lon,
        killed: ev.casualties.killed, injured: ev.casualties.injured, trapped: ev.casualties.trapped,
        rescued: ev.casualties.rescued, confirmed: ev.status === "confirmed", live_reports: ev.status === "retracted" ? 0 : 1 });
      shown();
      return;
    }
    // merged, revised, retracted: the incident's counts in force may have changed
    clearTimeout(refresh.get(ev.incident));
    refresh.set(ev.incident, setTimeout(() => { refresh.delete(ev.incident); refreshIncident(ev.incident); }, 300));
  }
  function connect() {
    const source = new EventSource("/desk/api/feed?after=" + config.feed_id);
    source.onopen = () => { feedState.textContent = S.connected; feedState.className = "badge live"; };
    source.onerror = () => { feedState.textContent = S.reconnecting; feedState.className = "badge"; };
    source.addEventListener("report", (e) => onReport(JSON.parse(e.data)));
    source.addEventListener("reload", () => { loadIncidents(); });
    window.desk.source = source;
  }

  document.getElementById("filters").addEventListener("change", loadIncidents);
  restoreFilters();
  Promise.all([loadOutlines(), loadIncidents()]).then(() => { window.desk.ready = true; connect(); });
})();
