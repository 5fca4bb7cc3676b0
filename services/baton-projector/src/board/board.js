// Baton board: ticks countdowns from their data attributes and applies live
// updates from /events (server-sent events). No polling: the page changes
// only when the server says something happened. Values from events are put
// in with textContent, never as markup.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  // Server time minus browser time, so countdowns follow the server's clock.
  let offset = Number(body.dataset.now) - Date.now();
  const serverNow = () => Date.now() + offset;
  const tz = body.dataset.tz || "UTC";
  // Breach keys that arrived live recently: they stay highlighted for a minute.
  const fresh = new Map();

  const pad = (n) => String(n).padStart(2, "0");
  // Same format as the server's html::time_left.
  function fmtLeft(ms) {
    const sign = ms < 0 ? "-" : "";
    const secs = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
    const m = Math.floor(secs / 60) % 60, s = secs % 60;
    if (d > 0) return `${sign}${d}d ${pad(h)}:${pad(m)}`;
    if (h > 0) return `${sign}${h}:${pad(m)}:${pad(s)}`;
    return `${sign}${pad(m)}:${pad(s)}`;
  }
  function fmtTime(ms) {
    try {
      return new Date(ms).toLocaleTimeString("en-GB", { timeZone: tz, hour12: false });
    } catch (e) {
      return new Date(ms).toISOString().slice(11, 19);
    }
  }

  function tick() {
    const now = serverNow();
    const clock = document.getElementById("clock");
    if (clock) clock.textContent = fmtTime(now);
    for (const el of document.querySelectorAll(".countdown[data-deadline]")) {
      const left = Number(el.dataset.deadline) - now;
      el.textContent = fmtLeft(left);
      const row = el.closest("tr");
      if (!row) continue;
      const warn = el.dataset.warn ? Number(el.dataset.warn) : null;
      row.classList.toggle("overdue", left <= 0);
      row.classList.toggle("warned", left > 0 && warn !== null && now >= warn);
    }
    for (const el of document.querySelectorAll(".since[data-since]")) {
      el.textContent = "+" + fmtLeft(now - Number(el.dataset.since));
    }
  }

  function setCount(sectionId) {
    const section = document.getElementById(sectionId);
    if (!section) return;
    const count = section.querySelector(".count");
    const rows = section.querySelectorAll("tbody tr:not(.empty), li:not(.empty)");
    if (count) count.textContent = String(rows.length);
  }

  // Swaps each named section for the same one fetched again.
  const inFlight = {};
  // A department's screen is one section, fetched from its own address.
  function refresh(...names) {
    if (page === "department") { refreshOne("department"); return; }
    if (page !== "board") return;
    for (const name of names) refreshOne(name);
  }
  function refreshOne(name) {
    if (inFlight[name]) { inFlight[name] = "again"; return; }
    inFlight[name] = true;
    const url = name === "department" ? location.pathname + "/live" : "/board/" + name;
    fetch(url, { cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const tpl = document.createElement("template");
        tpl.innerHTML = html;
        const next = tpl.content.firstElementChild;
        const current = next && document.getElementById(next.id);
        if (!current) return;
        if (next.dataset.now) offset = Number(next.dataset.now) - Date.now();
        current.replaceWith(next);
        markFresh();
        tick();
      })
      .catch(() => {})
      .finally(() => {
        const again = inFlight[name] === "again";
        inFlight[name] = false;
        if (again) refreshOne(name);
      });
  }

  function markFresh() {
    const now = Date.now();
    for (const [key, at] of fresh) {
      if (now - at > 60000) { fresh.delete(key); continue; }
      const row = document.querySelector(`#breach-rows tr[data-key="${CSS.escape(key)}"]`);
      if (row) row.classList.add("fresh");
    }
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  // A breach row at the top, straight from the event, before the refresh.
  function insertBreach(b) {
    if (page !== "board") return;
    const tbody = document.getElementById("breach-rows");
    if (!tbody || !b.key) return;
    fresh.set(b.key, Date.now());
    if (tbody.querySelector(`tr[data-key="${CSS.escape(b.key)}"]`)) { markFresh(); return; }
    for (const empty of tbody.querySelectorAll("tr.empty")) empty.remove();
    const tr = document.createElement("tr");
    tr.className = "breached fresh";
    tr.dataset.key = b.key;
    const over = cell("", "big");
    const since = document.createElement("span");
    since.className = "since";
    since.dataset.since = String(b.deadline || serverNow());
    over.appendChild(since);
    tr.appendChild(over);
    const link = document.createElement("a");
    link.href = "/handoff/" + encodeURIComponent(b.handoff_id);
    link.textContent = b.handoff_id;
    const id = cell("");
    id.appendChild(link);
    tr.appendChild(id);
    tr.appendChild(cell(b.policy_id));
    tr.appendChild(cell(`${b.supplier} \u2192 ${b.customer}`));
    tr.appendChild(cell(b.priority, "prio-" + b.priority));
    tr.appendChild(cell(b.deadline ? fmtTime(b.deadline) : ""));
    tbody.prepend(tr);
    // Its clock is no longer running.
    for (const row of document.querySelectorAll("#clock-rows tr[data-clock]")) {
      if (row.dataset.clock === `${b.policy_id}/${b.handoff_id}`) row.remove();
    }
    setCount("breaches");
    setCount("clocks");
    tick();
  }

  function removeBreach(b) {
    const row = document.querySelector(`#breach-rows tr[data-key="${CSS.escape(b.key || "")}"]`);
    if (row) row.remove();
    fresh.delete(b.key);
    setCount("breaches");
  }

  function markWarned(w) {
    for (const row of document.querySelectorAll("#clock-rows tr[data-clock]")) {
      if (row.dataset.clock === `${w.policy_id}/${w.handoff_id}`) row.classList.add("warned");
    }
  }

  function connect() {
    if (!window.EventSource) return;
    const source = new EventSource("/events");
    const live = document.getElementById("live");
    const data = (e) => { try { return JSON.parse(e.data); } catch (_) { return {}; } };
    const reloadIfCurrent = (d) => {
      if (body.dataset.current !== "true" && d.current) location.reload();
    };
    const about = (d) => page === "handoff" && d.handoff_id === body.dataset.subject;
    source.addEventListener("hello", (e) => {
      const d = data(e);
      body.dataset.live = "on";
      if (live) live.textContent = "live";
      reloadIfCurrent(d);
      // Catch up with anything between the page's rendering and now.
      refresh("live", "overview");
    });
    source.addEventListener("breach", (e) => {
      const d = data(e);
      if (about(d)) { location.reload(); return; }
      insertBreach(d);
      refresh("live", "overview");
    });
    source.addEventListener("correction", (e) => {
      const d = data(e);
      if (about(d)) { location.reload(); return; }
      removeBreach(d);
      refresh("live", "overview");
    });
    source.addEventListener("warning", (e) => {
      const d = data(e);
      if (about(d)) { location.reload(); return; }
      markWarned(d);
      refresh("live");
    });
    source.addEventListener("disruption", () => refresh("overview"));
    source.addEventListener("changed", (e) => {
      reloadIfCurrent(data(e));
      refresh("live");
    });
    source.onerror = () => {
      body.dataset.live = "off";
      if (live) live.textContent = "reconnecting";
    };
  }

  tick();
  setInterval(tick, 1000);
  if (["board", "department", "handoff", "rebuilding"].includes(page)) connect();
})();
