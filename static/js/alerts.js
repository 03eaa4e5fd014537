/* The monitoring page: open alerts arrive, change and leave live over the "alerts" stream. */
(function () {
  "use strict";

  var SEVERITY_CLASS = { critical: " bad", warning: " warn", info: "" };
  var STATE_LABEL = { firing: "Firing", acknowledged: "Acknowledged", resolved: "Resolved" };

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "—" : String(text);
    return td;
  }

  function badge(className, text) {
    var span = document.createElement("span");
    span.className = "badge" + className;
    span.textContent = text;
    return span;
  }

  function ackCell(table, item) {
    var td = document.createElement("td");
    td.className = "js-ack";
    if (item.state === "acknowledged") {
      td.textContent = (item.acknowledged_by || "system") + ": " + (item.note || "");
    } else if (table.dataset.canOperate === "1") {
      /* The server checks operate in the alert's environment and answers with a message if not. */
      var form = document.createElement("form");
      form.method = "post";
      form.className = "inline";
      form.action = table.dataset.ackUrl.replace("/0/", "/" + item.id + "/");
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrfmiddlewaretoken";
      token.value = window.OpsPortal.csrfToken();
      var note = document.createElement("input");
      note.name = "note";
      note.required = true;
      note.maxLength = 2000;
      note.placeholder = "What are you doing about it?";
      note.setAttribute("aria-label", "Note");
      var button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Acknowledge";
      form.append(token, note, " ", button);
      td.appendChild(form);
    } else {
      td.textContent = "—";
    }
    return td;
  }

  function row(table, item) {
    var tr = document.createElement("tr");
    tr.dataset.alert = item.id;
    tr.dataset.environment = item.environment;
    var severity = document.createElement("td");
    severity.appendChild(badge(SEVERITY_CLASS[item.severity] || "", item.severity));
    var state = document.createElement("td");
    state.className = "js-state";
    state.appendChild(badge(" state-" + item.state, STATE_LABEL[item.state] || item.state));
    var host = document.createElement("td");
    if (item.host) {
      var link = document.createElement("a");
      link.href = "/hosts/" + item.host + "/";
      link.textContent = item.host_name;
      host.appendChild(link);
    } else {
      host.textContent = item.host_name || "—";
    }
    var runbook = document.createElement("td");
    if (item.runbook_template_id) {
      var launch = document.createElement("a");
      launch.href = "/templates/" + item.runbook_template_id + "/launch/";
      launch.textContent = "Runbook";
      runbook.appendChild(launch);
    } else {
      runbook.textContent = "—";
    }
    tr.append(cell(item.id), severity, state, cell(item.summary), cell(item.environment_name), host,
              cell(new Date(item.fired_at).toLocaleString()), ackCell(table, item), runbook);
    return tr;
  }

  function apply(table, item) {
    // A page of one subject's alerts (?subject_kind=…&subject_id=…) takes only that subject's.
    if (table.dataset.subjectKind && (item.subject_kind !== table.dataset.subjectKind ||
                                      String(item.subject_id) !== table.dataset.subjectId)) { return; }
    var body = table.tBodies[0];
    var existing = body.querySelector("tr[data-alert='" + item.id + "']");
    if (item.state === "resolved") {
      if (existing) { existing.remove(); }
    } else if (existing) {
      var state = existing.querySelector(".js-state");
      state.textContent = "";
      state.appendChild(badge(" state-" + item.state, STATE_LABEL[item.state] || item.state));
      existing.replaceChild(ackCell(table, item), existing.querySelector(".js-ack"));
    } else {
      body.insertBefore(row(table, item), body.firstChild);
    }
    var empty = body.querySelector(".js-empty");
    var rows = body.querySelectorAll("tr[data-alert]").length;
    if (empty) { empty.hidden = rows > 0; }
  }

  document.addEventListener("portal:ready", function () {
    var table = document.getElementById("alerts-open");
    if (!table) { return; }
    window.OpsPortal.socket.subscribe("alerts", {}, function (items) {
      items.forEach(function (item) { apply(table, item); });
    });
  });
})();
