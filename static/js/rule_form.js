/* The alert rule form: show the fields the chosen kind uses (monitoring/forms.py empties the rest). */
(function () {
  "use strict";
  var METRIC_ONLY = ["metric", "comparator", "threshold", "clear_threshold", "mount"];
  var STATE_ONLY = ["name_filter"];  // and container, service and program metric rules
  var HOST_SCOPE = ["group", "tag"];  // host metric rules and program rules

  function row(name) {
    var input = document.getElementById("id_" + name);
    return input ? input.closest("div") : null;
  }

  function show(names, visible) {
    names.forEach(function (name) {
      var wrapper = row(name);
      if (wrapper) { wrapper.hidden = !visible; }
    });
  }

  var kind = document.getElementById("id_kind");
  if (!kind) { return; }
  function sync() {
    var hostMetric = kind.value === "metric";
    var objectMetric = ["container_metric", "service_metric", "program_metric"].indexOf(kind.value) >= 0;
    show(METRIC_ONLY, hostMetric || objectMetric);
    show(["mount"], hostMetric);
    show(STATE_ONLY, !hostMetric);
    show(HOST_SCOPE, hostMetric || kind.value === "program_not_running" || kind.value === "program_metric");
  }
  kind.addEventListener("change", sync);
  sync();
})();
