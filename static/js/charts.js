/* Host charts: CPU %, memory %, load and disk % per mount from /api/metrics/, drawn with uPlot.
   The API picks the resolution (raw samples, 5-minute or hourly averages) from the range. */
(function () {
  "use strict";

  var COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  var REFRESH_MS = 60000;

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
    var width = Math.max(260, figure.clientWidth - 24);
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
    figure.plot = new window.uPlot(options, columns(body), figure);
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
