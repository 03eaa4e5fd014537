/* The navigation's search box: results appear under it as you type (htmx fetches /search/),
   ArrowDown moves into them, ArrowUp/ArrowDown between them, Escape closes and returns to the box,
   Enter on the box opens the whole result page. */
(function () {
  "use strict";

  function setUp(input, panel) {
    function hits() { return Array.prototype.slice.call(panel.querySelectorAll(".search-hit")); }
    function close() { panel.hidden = true; }

    panel.addEventListener("htmx:afterSwap", function () {
      panel.hidden = input.value.trim() === "" || !panel.textContent.trim();
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" && hits().length) {
        e.preventDefault();
        panel.hidden = false;
        hits()[0].focus();
      } else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("input", function () { if (!input.value.trim()) { close(); } });
    panel.addEventListener("keydown", function (e) {
      var list = hits(), at = list.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && at < list.length - 1) { e.preventDefault(); list[at + 1].focus(); }
      else if (e.key === "ArrowUp") { e.preventDefault(); if (at > 0) { list[at - 1].focus(); } else { input.focus(); } }
      else if (e.key === "Escape") { e.preventDefault(); close(); input.focus(); }
    });
    document.addEventListener("click", function (e) {
      if (!panel.contains(e.target) && e.target !== input) { close(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("nav-search-q");
    var panel = document.getElementById("nav-search-results");
    if (input && panel) { setUp(input, panel); }
  });
})();
