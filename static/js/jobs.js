/* Jobs pages: live list, and the job page with its virtualised log, target grid and progress. */
(function () {
  "use strict";

  var STATE_LABELS = {
    pending_approval: "Waiting for approval", queued: "Queued", running: "Running", succeeded: "Succeeded",
    failed: "Failed", canceled: "Canceled", timed_out: "Timed out", lost: "Lost (worker died)",
    rejected: "Rejected", expired: "Approval expired", pending: "Pending", ok: "OK", skipped: "Skipped",
    rolled_back: "Rolled back"
  };

  function badge(state) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    span.dataset.state = state;
    span.textContent = STATE_LABELS[state] || state;
    return span;
  }

  function setBadge(cell, state) {
    if (!cell) { return; }
    cell.textContent = "";
    cell.appendChild(badge(state));
  }

  /* A log that renders only the rows in view, so 100,000 lines stay fast. */
  function LogView(root) {
    this.root = root;
    this.spacer = root.querySelector(".log-spacer");
    this.rows = root.querySelector(".log-rows");
    this.lines = [];        // {target, stream, text, kind}
    this.visible = null;    // indexes into lines when filtered
    this.rowHeight = 18;
    this.follow = true;
    this.names = {};
    this.pending = false;
    var self = this;
    root.addEventListener("scroll", function () { self.schedule(); });
  }

  LogView.prototype.add = function (items) {
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      this.lines.push(item);
      if (this.visible && this.matches(item)) { this.visible.push(this.lines.length - 1); }
    }
    this.schedule();
  };

  LogView.prototype.matches = function (item) {
    return this.filter === undefined || this.filter === "" || String(item.target) === this.filter;
  };

  LogView.prototype.setFilter = function (value) {
    this.filter = value;
    if (value === "") { this.visible = null; }
    else {
      this.visible = [];
      for (var i = 0; i < this.lines.length; i++) { if (this.matches(this.lines[i])) { this.visible.push(i); } }
    }
    this.schedule();
  };

  LogView.prototype.count = function () { return this.visible ? this.visible.length : this.lines.length; };

  LogView.prototype.schedule = function () {
    var self = this;
    if (this.pending) { return; }
    this.pending = true;
    window.requestAnimationFrame(function () { self.pending = false; self.render(); });
  };

  LogView.prototype.render = function () {
    var total = this.count();
    this.spacer.style.height = (total * this.rowHeight) + "px";
    if (this.follow) { this.root.scrollTop = this.root.scrollHeight; }
    var first = Math.max(0, Math.floor(this.root.scrollTop / this.rowHeight) - 20);
    var last = Math.min(total, first + Math.ceil(this.root.clientHeight / this.rowHeight) + 40);
    this.rows.style.transform = "translateY(" + (first * this.rowHeight) + "px)";
    var fragment = document.createDocumentFragment();
    for (var i = first; i < last; i++) {
      var item = this.lines[this.visible ? this.visible[i] : i];
      var row = document.createElement("div");
      row.className = "log-row " + (item.stream === "stderr" ? "stderr" : item.kind);
      var who = item.target !== undefined ? (this.names[item.target] || "#" + item.target) : "";
      row.textContent = (who ? who + " | " : "-- ") + item.text;
      fragment.appendChild(row);
    }
    this.rows.textContent = "";
    this.rows.appendChild(fragment);
    var counter = document.querySelector(".js-log-count");
    if (counter) { counter.textContent = total + " lines"; }
  };

  /* The job page. The log and the target rows follow the job stream event by event; the part that
     says where the job stands (state, buttons, why it waits, counts, timings, approvals) is
     server-rendered and fetched again (jobs:live, htmx) whenever a stream says the job changed, and
     after every (re)subscription, so it never disagrees with a reload. */
  function jobPage(root) {
    var jobId = parseInt(root.dataset.job, 10);
    var log = new LogView(document.getElementById("log"));
    var refresh = window.OpsPortal.refresher("#job-live");
    var rows = {};
    document.querySelectorAll("#targets tbody tr").forEach(function (tr) {
      rows[tr.dataset.index] = tr;
      log.names[tr.dataset.index] = tr.children[1].textContent;
    });

    function targetEvent(item) {
      var data = item.data || {}, tr = rows[item.target];
      if (!tr) { return; }
      setBadge(tr.querySelector(".js-tstate"), data.state);
      tr.querySelector(".js-exit").textContent = data.exit_code === null || data.exit_code === undefined ? "" : data.exit_code;
      tr.querySelector(".js-changed").textContent = data.changed === true ? "yes" : data.changed === false ? "no" : "—";
      tr.querySelector(".js-terror").textContent = data.error || "";
      if (data.counts) {
        tr.querySelector(".js-counts").textContent = Object.keys(data.counts).filter(function (k) {
          return data.counts[k]; }).map(function (k) { return k + "=" + data.counts[k]; }).join(" ");
      }
    }

    /* Task rows an action reports for its target (info events with data.task). */
    var tasks = document.querySelector("#target-tasks tbody");
    var tasksSection = document.getElementById("target-tasks-section");
    if (tasks && tasks.children.length) { tasksSection.hidden = false; }

    function taskEvent(item) {
      var task = item.data.task, key = item.target + "-" + task.task;
      var tr = tasks.querySelector("tr[data-key='" + key + "']");
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.key = key;
        for (var i = 0; i < 7; i++) { tr.appendChild(document.createElement("td")); }
        tasks.appendChild(tr);
      }
      var cells = tr.children;
      cells[0].textContent = log.names[item.target] || "#" + item.target;
      cells[1].textContent = task.slot === null || task.slot === undefined ? "—" : task.slot;
      cells[2].textContent = task.task;
      var kind = task.state === "running" ? "ok" : (task.state === "failed" || task.state === "rejected") ? "failed" : "pending";
      var span = document.createElement("span");
      span.className = "badge state-" + kind;
      span.textContent = task.state;
      cells[3].textContent = "";
      cells[3].appendChild(span);
      cells[4].textContent = task.desired || "";
      cells[5].textContent = task.node || "";
      cells[6].textContent = task.error || "";
      cells[6].className = "small bad";
      tasksSection.hidden = false;
    }

    /* Puppet's resource counts per target (target events with data.resources), as each target ends. */
    var resources = document.querySelector("#puppet-resources tbody");
    var resourcesSection = document.getElementById("puppet-resources-section");
    var RESOURCE_KEYS = ["total", "changed", "failed", "out_of_sync", "unchanged"];

    function resourcesEvent(item) {
      var counts = item.data.resources, index = String(item.target);
      var tr = resources.querySelector("tr[data-index='" + index + "']");
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.index = index;
        for (var i = 0; i < 7; i++) { tr.appendChild(document.createElement("td")); }
        var after = Array.prototype.find.call(resources.children, function (row) {
          return parseInt(row.dataset.index, 10) > item.target; });
        resources.insertBefore(tr, after || null);
      }
      var cells = tr.children;
      cells[0].textContent = log.names[item.target] || "#" + item.target;
      RESOURCE_KEYS.forEach(function (key, i) {
        cells[i + 1].textContent = counts[key] === undefined || counts[key] === null ? "" : counts[key];
      });
      cells[3].className = counts.failed ? "bad" : "";
      var code = document.createElement("code");
      code.textContent = (item.data.revision || "").slice(0, 12);
      cells[6].textContent = "";
      cells[6].appendChild(code);
      resourcesSection.hidden = false;
    }

    var follow = document.querySelector(".js-log-follow");
    follow.addEventListener("change", function () { log.follow = follow.checked; log.schedule(); });
    document.querySelector(".js-log-target").addEventListener("change", function (e) { log.setFilter(e.target.value); });

    window.OpsPortal.socket.subscribe("job", { job: jobId }, function (items) {
      var lines = [], changed = false;
      items.forEach(function (item) {
        if (item.kind === "target") {
          targetEvent(item);
          if (item.data && item.data.resources && resources) { resourcesEvent(item); }
          changed = true;
          lines.push({ target: item.target, kind: "target",
            text: "** " + (item.data && item.data.state) + (item.data && item.data.error ? ": " + item.data.error : "") });
        } else if (item.kind === "info" && item.data && item.data.task && tasks) { taskEvent(item); if (item.text) { lines.push(item); } }
        else if (item.kind === "info" && item.data && item.data.slice) { changed = true; lines.push(item); }
        else if (item.kind === "state") {
          changed = true;
          lines.push({ kind: "state", text: "job " + item.data.state });
        } else { lines.push(item); }
      });
      log.add(lines);
      if (changed) { refresh(); }
    }, { onSubscribed: refresh });
    window.OpsPortal.socket.subscribe("jobs", {}, function (items) {
      if (items.some(function (summary) { return summary.id === jobId; })) { refresh(); }
    }, { onSubscribed: refresh });
    // Approvers hear of each decision; everyone else sees the job change state when it is decided.
    window.OpsPortal.socket.subscribe("approvals", {}, function (items) {
      if (items.some(function (a) { return a.subject_type === "job" && a.subject_id === jobId; })) { refresh(); }
    }, { onError: function () {} });
    document.addEventListener("portal:reconnected", refresh);
  }

  /* A row's target counts from a stream summary, as jobs/_progress.html renders them: canceled,
     skipped and lost targets are named, never counted as done. */
  var COUNT_KEYS = ["ok", "failed", "canceled", "skipped", "lost", "running", "pending"];
  function progress(cell, summary) {
    var counts = summary.counts || {}, wrap = document.createElement("span"), first = true;
    wrap.className = "progress-counts";
    COUNT_KEYS.forEach(function (key) {
      var n = counts[key] || 0;
      if (!n && key !== "ok" && key !== "failed") { return; }
      if (!first) { wrap.appendChild(document.createTextNode(", ")); }
      first = false;
      var part = document.createElement("span");
      part.className = "count-" + key + (n ? " some" : "");
      part.textContent = n + " " + key;
      wrap.appendChild(part);
    });
    wrap.appendChild(document.createTextNode(" of " + summary.targets_total));
    cell.textContent = "";
    cell.appendChild(wrap);
  }

  function listPage(table) {
    window.OpsPortal.socket.subscribe("jobs", {}, function (items) {
      items.forEach(function (summary) {
        var tr = table.querySelector("tr[data-job='" + summary.id + "']");
        if (!tr) {
          var notice = document.getElementById("jobs-new-notice");
          if (notice) { notice.hidden = false; }
          return;
        }
        setBadge(tr.querySelector(".js-state"), summary.state);
        progress(tr.querySelector(".js-progress"), summary);
        var finished = tr.querySelector(".js-finished");
        if (summary.finished && finished) { finished.textContent = summary.finished.replace("T", " ").slice(0, 19); }
      });
    });
  }

  function objectJobs(table) {
    var showSystem = new URLSearchParams(window.location.search).get("system_jobs") === "1";
    window.OpsPortal.socket.subscribe("object", { kind: table.dataset.objectKind, id: parseInt(table.dataset.objectId, 10) },
      function (items) {
        items.forEach(function (summary) {
          var tr = table.querySelector("tr[data-job='" + summary.id + "']");
          if (tr) { setBadge(tr.querySelector(".js-state"), summary.state); return; }
          // The portal's own jobs (no person launched them) stay out unless the page asked for them.
          if (!summary.created_by && !showSystem) { return; }
          tr = document.createElement("tr");
          tr.dataset.job = summary.id;
          var link = document.createElement("a");
          link.href = "/jobs/" + summary.id + "/";
          link.textContent = summary.id;
          var cells = [link, summary.name, null, summary.created_by || "system", "now"];
          cells.forEach(function (value, i) {
            var td = document.createElement("td");
            if (i === 2) { td.className = "js-state"; td.appendChild(badge(summary.state)); }
            else if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value; }
            tr.appendChild(td);
          });
          table.querySelector("tbody").insertBefore(tr, table.querySelector("tbody").firstChild);
        });
      });
  }

  function adhocForm(form) {
    var select = form.querySelector("select[name=action]");
    function show() {
      form.querySelectorAll(".action-params").forEach(function (set) {
        var active = set.dataset.action === select.value;
        set.hidden = !active;
        set.disabled = !active;
      });
    }
    select.addEventListener("change", show);
    show();
    targetPicker(form);
    strategyFields(form);
  }

  /* The target picker: "every host" greys out the criteria; only the chosen environment's groups show. */
  function targetPicker(form) {
    var all = form.querySelector("input[name=target_all]");
    var environment = form.querySelector("select[name=environment]");
    var groups = form.querySelector("select[name=target_groups]");
    if (!all || !environment) { return; }
    function sync() {
      ["target_groups", "target_names", "target_tags", "target_pattern"].forEach(function (name) {
        var input = form.querySelector("[name=" + name + "]");
        if (input) { input.disabled = all.checked; }
      });
      if (groups) {
        Array.prototype.forEach.call(groups.options, function (option) {
          var here = (option.dataset.environments || "").split(" ").indexOf(environment.value) >= 0;
          option.hidden = !here;
          if (!here) { option.selected = false; }
        });
      }
    }
    all.addEventListener("change", sync);
    environment.addEventListener("change", sync);
    sync();
  }

  /* Batches, pauses and health gates belong to a rolling strategy: shown only for it. */
  function strategyFields(form) {
    var kind = form.querySelector("select[name=strategy_kind]");
    var rolling = form.querySelector(".rolling-only");
    var gate = form.querySelector("select[name=gate_type]");
    if (!kind || !rolling) { return; }
    function sync() {
      rolling.hidden = kind.value !== "rolling";
      var type = gate ? gate.value : "";
      ["url", "command", "timeout", "retries", "interval"].forEach(function (part) {
        var row = form.querySelector(".strategy-gate_" + part);
        if (row) { row.hidden = !type || (part === "url" && type !== "http") || (part === "command" && type !== "command"); }
      });
    }
    kind.addEventListener("change", sync);
    if (gate) { gate.addEventListener("change", sync); }
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var adhoc = document.getElementById("adhoc-form");
    if (adhoc) { adhocForm(adhoc); }
  });

  document.addEventListener("portal:ready", function () {
    var objectTable = document.querySelector("[data-object-kind]");
    if (objectTable) { objectJobs(objectTable); }
    var job = document.getElementById("job");
    if (job) { jobPage(job); }
    var table = document.getElementById("jobs") || document.getElementById("recent-jobs");
    if (table) { listPage(table); }
  });
})();
