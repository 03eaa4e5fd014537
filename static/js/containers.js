/* Container pages: rows kept live from the "containers" stream (engines, containers, services of
   the environments the user may view) and object pages from "container_object" (one engine,
   container or service, with a service's tasks); the container's stats chart. */
(function () {
  "use strict";

  function badge(text, kind) {
    var span = document.createElement("span");
    span.className = "badge" + (kind ? " " + kind : "");
    span.textContent = text;
    return span;
  }

  function put(cell, node) {
    if (!cell) { return; }
    cell.textContent = "";
    cell.appendChild(node);
  }

  function text(root, selector, value) {
    var cell = root.querySelector(selector);
    if (cell) { cell.textContent = value === null || value === undefined ? "—" : value; }
  }

  function containerKind(item) {
    if (item.state === "running") { return item.health === "unhealthy" ? "bad" : "ok"; }
    return ["paused", "restarting", "created"].indexOf(item.state) >= 0 ? "warn" : "bad";
  }

  function containerBadge(item) {
    var span = badge((item.state || "?") + (item.health ? " · " + item.health : ""), containerKind(item));
    span.classList.add("js-cstate");
    return span;
  }

  function engineBadge(item) {
    var labels = { ok: "Up", degraded: "Up, with problems", down: "Down", refused: "Refused (TLS, host key or login)",
                   unsupported: "API too old", misconfigured: "Misconfigured", unknown: "Not checked yet" };
    var kind = item.state === "ok" ? "ok" : (item.state === "degraded" || item.state === "unknown") ? "warn" : "bad";
    var span = badge(labels[item.state] || item.state, kind);
    span.classList.add("js-engine-state");
    span.dataset.state = item.state;
    return span;
  }

  function replicas(item, suffix) {
    var ok = item.replicas_running === item.replicas_desired;
    var show = function (v) { return v === null || v === undefined ? "?" : v; };
    return badge(show(item.replicas_running) + "/" + show(item.replicas_desired) + (suffix || ""), ok ? "ok" : "warn");
  }

  function endpoints(list) {
    return (list || []).slice(0, 6).map(function (e) { return (e.address || "127.0.0.1") + ":" + e.port; }).join(", ") || "—";
  }

  function updateEngine(root, item) {
    var row = root.querySelector("[data-engine='" + item.id + "']") || (root.dataset.kind === "engine" ? root : null);
    if (!row) { return false; }
    var state = row.querySelector(".js-engine-state");
    if (state) { state.replaceWith(engineBadge(item)); }
    var error = row.querySelector(".js-engine-error");
    if (error) { error.textContent = item.error || ""; error.hidden = !item.error; }
    var version = row.querySelector(".js-engine-version");
    if (version && item.version) { version.textContent = item.version + (item.api_version ? " (API " + item.api_version + ")" : ""); }
    var seen = row.querySelector(".js-engine-seen");
    if (seen && item.last_seen) { seen.textContent = item.last_seen.replace("T", " ").slice(0, 19); }
    return true;
  }

  function updateContainer(root, item) {
    var row = root.querySelector("tr[data-id='" + item.id + "']") ||
      (root.dataset.kind === "container" && String(item.id) === root.dataset.id ? root : null);
    if (!row) { return false; }
    var state = row.querySelector(".js-cstate");
    if (state) { state.replaceWith(containerBadge(item)); }
    text(row, ".js-status", item.status);
    text(row, ".js-restarts", item.restart_count);
    if (item.exit_code !== null && item.exit_code !== undefined) { text(row, ".js-exit", item.exit_code); }
    return true;
  }

  function updateService(root, item) {
    var row = root.querySelector("tr[data-service='" + item.id + "']") ||
      (root.dataset.kind === "service" && String(item.id) === root.dataset.id ? root : null);
    if (!row) { return false; }
    put(row.querySelector(".js-replicas"), replicas(item, root === row ? " running" : ""));
    text(row, ".js-update-state", item.update_state ? item.update_state + (item.update_message && root === row ? ": " + item.update_message : "") : "—");
    text(row, ".js-endpoints", endpoints(item.endpoints));
    text(row, ".js-image", item.image);
    text(row, ".js-version", item.version);
    return true;
  }

  function updateTask(root, item) {
    var table = root.querySelector("#tasks tbody");
    if (!table) { return; }
    var empty = table.querySelector(".js-empty");
    if (empty) { empty.remove(); }
    var row = table.querySelector("tr[data-task='" + item.id + "']");
    if (!row) {
      row = document.createElement("tr");
      row.dataset.task = item.id;
      ["slot", "task", "js-tstate", "js-tdesired", "node", "container", "js-terror", "js-ttime"].forEach(function (name) {
        var td = document.createElement("td");
        if (name.indexOf("js-") === 0) { td.className = name; }
        row.appendChild(td);
      });
      row.children[0].textContent = item.slot === null ? "—" : item.slot;
      row.children[1].textContent = item.id.slice(0, 12);
      row.children[4].textContent = (item.node || "").slice(0, 12);
      table.insertBefore(row, table.firstChild);
    }
    // Keep the server's link to the container page while the task still runs the same container.
    var shown = row.children[5].textContent.trim();
    if (!shown || !item.container || item.container.indexOf(shown) !== 0) { row.children[5].textContent = item.container || ""; }
    put(row.querySelector(".js-tstate"), badge(item.state, item.state === "running" ? "ok" :
      (item.state === "failed" || item.state === "rejected") ? "bad" : ""));
    text(row, ".js-tdesired", item.desired_state);
    row.querySelector(".js-terror").textContent = item.error || "";
    row.querySelector(".js-terror").className = "small bad js-terror";
    text(row, ".js-ttime", item.timestamp ? item.timestamp.slice(11, 19) : "");
  }

  function apply(root, items) {
    var unknown = false;
    items.forEach(function (item) {
      if (item.kind === "engine") { updateEngine(root, item); }
      else if (item.kind === "container") { unknown = !updateContainer(root, item) || item.removed || unknown; }
      else if (item.kind === "service") { unknown = !updateService(root, item) || item.removed || unknown; }
      else if (item.kind === "task") { updateTask(root, item); }
    });
    var notice = root.querySelector(".js-new");
    if (notice && unknown) {
      var interesting = root.id === "containers-page" ? items.some(function (i) { return i.kind === "container"; }) :
        items.some(function (i) { return i.kind === "service" && !i.removed; });
      if (interesting) { notice.hidden = false; }
    }
  }

  function selectAll(table) {
    var all = table.querySelector(".js-all");
    if (!all) { return; }
    all.addEventListener("change", function () {
      table.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = all.checked; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("containers");
    if (table) { selectAll(table); }
  });

  document.addEventListener("portal:ready", function () {
    var socket = window.OpsPortal.socket;
    document.querySelectorAll("[data-stream='containers']").forEach(function (root) {
      socket.subscribe("containers", {}, function (items) { apply(root, items); });
    });
    document.querySelectorAll("[data-kind][data-id]").forEach(function (root) {
      if (root.tagName === "TABLE") { return; }
      socket.subscribe("container_object", { kind: root.dataset.kind, id: parseInt(root.dataset.id, 10) },
        function (items) { apply(root, items); });
    });
  });
})();
