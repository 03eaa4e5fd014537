/* Charts drawn with uPlot. A container's, Swarm service's or program's charts: from the page.
   Host charts: CPU %, memory %, load and disk % per mount from
   /api/metrics/ (the API picks the resolution, raw samples, 5-minute or hourly averages, from the
   range). The dashboard's fleet charts: data from dashboard:fleet_data, fetched once the page is up. */
(function () {
  "use strict";

  var COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  var REFRESH_MS = 60000;
  // The shortest time axis: a single sample (or a few close together) must not leave uPlot to
  // pad the range by itself (it reached years for one point).
  var MIN_SPAN_SECONDS = 600;

  /* The x range of a chart of these times: from the first sample to the last one (or now, when
     that is later, up to a week on), at least MIN_SPAN_SECONDS wide. Computed from the data, not
     from uPlot's arguments: for a single point uPlot hands the range its own guess (1000 days). */
  function timeRange(times) {
    var first = times[0], last = times[times.length - 1];
    var end = Math.max(last, Math.min(Date.now() / 1000, first + 7 * 86400));
    var range = [first, Math.max(end, first + MIN_SPAN_SECONDS)];
    return function () { return range.slice(); };
  }

  function query(container, metric, seconds) {
    var until = new Date();
    var since = new Date(until.getTime() - seconds * 1000);
    return container.dataset.url + "?host=" + encodeURIComponent(container.dataset.host) +
      "&metric=" + encodeURIComponent(metric) + "&since=" + encodeURIComponent(since.toISOString()) +
      "&until=" + encodeURIComponent(until.toISOString());
  }

  /* uPlot wants one x array: merge the series' times (disk mounts are sampled together). */
  function columns(body) {
    var seen = {};
    body.series.forEach(function (s) { s.times.forEach(function (t) { seen[t] = true; }); });
    var times = Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
    var data = [times];
    body.series.forEach(function (s) {
      var at = {};
      s.times.forEach(function (t, i) { at[t] = s.values[i]; });
      data.push(times.map(function (t) { return t in at ? at[t] : null; }));
    });
    return data;
  }

  function draw(figure, body) {
    var title = figure.dataset.title;
    var percent = figure.dataset.percent === "1";
    var width = Math.max(200, figure.clientWidth - 24);
    var series = [{}].concat(body.series.map(function (s, i) {
      return { label: s.mount || title, stroke: COLORS[i % COLORS.length], width: 1.5,
               value: function (u, v) { return v == null ? "—" : v.toFixed(1) + (percent ? " %" : ""); } };
    }));
    var options = {
      title: title + " (" + body.step + ")", width: width, height: 200, series: series,
      scales: { y: percent ? { range: [0, 100] } : { auto: true } },
      axes: [{}, { size: 48 }]
    };
    if (figure.plot) { figure.plot.destroy(); }
    figure.textContent = "";
    if (!body.series.length || !body.series.some(function (s) { return s.times.length; })) {
      figure.textContent = title + ": no samples in this range yet.";
      figure.plot = null;
      return;
    }
    var data = columns(body);
    options.scales.x = { time: true, range: timeRange(data[0]) };
    figure.plot = new window.uPlot(options, data, figure);
  }

  function load(container, seconds, status) {
    var figures = container.querySelectorAll("figure[data-metric]");
    status.textContent = "loading…";
    var pending = figures.length;
    figures.forEach(function (figure) {
      fetch(query(container, figure.dataset.metric, seconds), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(function (body) {
        draw(figure, body);
      }).catch(function (error) {
        figure.textContent = figure.dataset.title + ": could not load (" + error.message + ").";
      }).finally(function () {
        pending -= 1;
        if (pending === 0) { status.textContent = "updated " + new Date().toLocaleTimeString(); }
      });
    });
  }

  /* The dashboard's fleet charts: data fetched from the URL in #fleet-charts (dashboard/charts.py). */
  var STATE_COLORS = { succeeded: "#1d7a4c", failed: "#b3261e", timed_out: "#7f1d1d", lost: "#a86400",
    canceled: "#6b7785", running: "#2f6fb0", queued: "#8fb8e0", pending_approval: "#7c3aed",
    rejected: "#db2777", expired: "#9aa5b1", critical: "#b3261e", warning: "#a86400", info: "#2f6fb0",
    avg: "#2563eb", max: "#d97706" };

  function fleetPlot(figure, title, times, lines, percent) {
    if (figure.plot) { figure.plot.destroy(); figure.plot = null; }
    figure.textContent = "";
    if (!times.length) {
      var empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = title + ": nothing in this range yet.";
      figure.appendChild(empty);
      return;
    }
    var width = Math.max(200, figure.clientWidth - 24);
    var series = [{}].concat(lines.map(function (line, i) {
      return { label: line.label, stroke: STATE_COLORS[line.key] || COLORS[i % COLORS.length], width: 1.5,
               points: { show: times.length < 60 },
               value: function (u, v) { return v == null ? "—" : (Math.round(v * 10) / 10) + (percent ? " %" : ""); } };
    }));
    var options = { title: title, width: width, height: 200, series: series,
      scales: { x: { time: true, range: timeRange(times) }, y: percent ? { range: [0, 100] } : { auto: true, range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{}, { size: 48 }] };
    figure.plot = new window.uPlot(options, [times].concat(lines.map(function (line) { return line.values; })), figure);
  }

  function fleetCharts(root, data) {
    root.querySelectorAll("figure[data-chart]").forEach(function (figure) {
      var kind = figure.dataset.chart, title = figure.dataset.title;
      if (kind === "metric") {
        var m = data.metrics[figure.dataset.metric];
        fleetPlot(figure, title, m.times, [{ key: "avg", label: "average", values: m.avg },
                                           { key: "max", label: "highest", values: m.max }], true);
      } else if (kind === "jobs") {
        fleetPlot(figure, title, data.jobs.times, data.jobs.states.map(function (s) {
          return { key: s, label: data.jobs.labels[s], values: data.jobs[s] };
        }), false);
      } else if (kind === "durations") {
        fleetPlot(figure, title, data.durations.times, [{ key: "avg", label: "average", values: data.durations.avg },
                                                        { key: "max", label: "longest", values: data.durations.max }], false);
      } else if (kind === "alerts") {
        fleetPlot(figure, title, data.alerts.times, ["critical", "warning", "info"].map(function (s) {
          return { key: s, label: s, values: data.alerts[s] };
        }), false);
      }
    });
  }

  /* One object's charts (a container's, a Swarm service's, a program's: monitoring's object_charts
     tag): the samples come with the page as JSON (the element named by data-source), one figure per
     series (data-series, data-title, data-scale divides the values). */
  function objectCharts(root) {
    var source = document.getElementById(root.dataset.source);
    var data = source ? JSON.parse(source.textContent) : {};
    root.querySelectorAll("figure[data-series]").forEach(function (figure) {
      var scale = Number(figure.dataset.scale || 1);
      var series = data[figure.dataset.series];
      figure.textContent = "";
      if (!series || !series.times.length) {
        var empty = document.createElement("p");
        empty.className = "muted";
        empty.textContent = figure.dataset.title + ": no samples in the last hour.";
        figure.appendChild(empty);
        return;
      }
      var values = series.values.map(function (v) { return v == null ? null : v / scale; });
      var options = { title: figure.dataset.title, width: Math.max(260, figure.clientWidth - 24), height: 180,
        series: [{}, { label: figure.dataset.title, stroke: COLORS[0], width: 1.5,
                       points: { show: series.times.length < 60 },
                       value: function (u, v) { return v == null ? "—" : (Math.round(v * 10) / 10).toString(); } }],
        scales: { x: { time: true, range: timeRange(series.times) } }, axes: [{}, { size: 52 }] };
      figure.plot = new window.uPlot(options, [series.times, values], figure);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.uPlot) { document.querySelectorAll("[data-object-charts]").forEach(objectCharts); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var fleet = document.getElementById("fleet-charts"), fleetStatus = document.getElementById("fleet-status");
    if (fleet && window.uPlot) {
      fetch(fleet.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        }).then(function (data) {
          fleetCharts(fleet, data);
          fleetStatus.textContent = "Up to " + new Date(data.until * 1000).toLocaleTimeString() + ".";
        }).catch(function (error) {
          fleetStatus.textContent = "The charts could not be loaded (" + error.message + ").";
        }).finally(function () { fleet.setAttribute("aria-busy", "false"); });
    }
    var chooser = document.querySelector(".js-chart-environment");
    if (chooser) { chooser.addEventListener("change", function () { chooser.form.submit(); }); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var container = document.getElementById("host-charts");
    if (!container || !window.uPlot) { return; }
    var status = document.getElementById("host-charts-status");
    var buttons = document.querySelectorAll(".chart-ranges [data-range]");
    var seconds = 21600;
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (b) { b.classList.remove("active"); b.setAttribute("aria-pressed", "false"); });
        button.classList.add("active");
        button.setAttribute("aria-pressed", "true");
        seconds = Number(button.dataset.range);
        load(container, seconds, status);
      });
    });
    load(container, seconds, status);
    window.setInterval(function () {
      if (!document.hidden) { load(container, seconds, status); }
    }, REFRESH_MS);
  });
})();
