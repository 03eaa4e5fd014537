/* Program pages: live program state (the "programs" stream) and a program's log job output (the "job" stream). */
(function () {
  "use strict";

  var BAD = ["fatal", "backoff", "exited"];
  var WARN = ["paused", "stopped", "starting", "stopping"];
  var MAX_LINES = 5000;

  function stateBadges(cell, item) {
    cell.textContent = "";
    var badge = document.createElement("span");
    badge.className = "badge js-state" + (item.state === "running" ? " ok" : BAD.indexOf(item.state) >= 0 ? " bad" :
      WARN.indexOf(item.state) >= 0 ? " warn" : "");
    badge.dataset.state = item.state;
    badge.textContent = item.state_label || item.state;
    cell.appendChild(badge);
    if (item.crash_loop) {
      var loop = document.createElement("span");
      loop.className = "badge bad js-crash";
      loop.textContent = "crash loop";
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(loop);
    }
  }

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el) { el.textContent = text; }
  }

  function updateProgram(item) {
    var roots = document.querySelectorAll("[data-program='" + item.id + "']");
    roots.forEach(function (root) {
      root.querySelectorAll(".js-state-cell").forEach(function (cell) { stateBadges(cell, item); });
      setText(root, ".js-restarts", item.restarts === null ? "—" : String(item.restarts));
      setText(root, ".js-reason", item.exit_reason || (root.tagName === "TR" ? "" : "—"));
      setText(root, ".js-pids", item.pids && item.pids.length ? item.pids.join(", ") : "none");
      if (root.tagName === "TR") {
        setText(root, ".js-errors", item.error_count === null ? "—" : String(item.error_count));
        root.classList.toggle("crash-loop", !!item.crash_loop);
      }
    });
  }

  function followLog(box) {
    var state = document.querySelector(".js-log-state");
    window.OpsPortal.socket.subscribe("job", { job: parseInt(box.dataset.job, 10) }, function (items) {
      var atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
      items.forEach(function (item) {
        if (item.kind === "state" && state) { state.textContent = item.text; }
        if (item.kind !== "output" && item.kind !== "info") { return; }
        var row = document.createElement("div");
        row.className = item.kind === "info" ? "info" : (item.stream || "stdout");
        row.textContent = item.text;
        box.appendChild(row);
      });
      while (box.childNodes.length > MAX_LINES) { box.removeChild(box.firstChild); }
      if (atEnd) { box.scrollTop = box.scrollHeight; }
    });
  }

  function start() {
    if (!window.OpsPortal || !window.OpsPortal.socket) { return; }
    if (document.querySelector("[data-live='programs']")) {
      window.OpsPortal.socket.subscribe("programs", {}, function (items) {
        items.forEach(function (item) { if (item.kind === "program") { updateProgram(item); } });
      });
    }
    var box = document.getElementById("program-log");
    if (box) { followLog(box); }
  }

  document.addEventListener("portal:ready", start);
})();
