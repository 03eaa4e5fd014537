/* Ops portal layout on every screen: on a narrow window the sections sit behind a "Menu" button,
   and wide tables scroll sideways in a box of their own, reachable by keyboard, instead of widening
   the page. Without script the sections stay on a row that scrolls and the page still works. */
(function () {
  "use strict";

  var NARROW = window.matchMedia("(max-width: 720px)");
  var SCROLLERS = ".scroll, .scroll-x, pre";  // pre: logs and structured values scroll too

  function navigationMenu() {
    var toggle = document.getElementById("nav-toggle");
    var topbar = toggle && toggle.closest(".topbar");
    if (!topbar) { return; }
    function setOpen(open) {
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      topbar.classList.toggle("nav-open", open);
    }
    topbar.classList.add("nav-collapsible");
    toggle.hidden = false;
    toggle.addEventListener("click", function () { setOpen(toggle.getAttribute("aria-expanded") !== "true"); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && NARROW.matches && topbar.classList.contains("nav-open")) {
        setOpen(false);
        toggle.focus();
      }
    });
  }

  /* A name for a scroll box: its table's label or caption, else the nearest heading before it. */
  function boxName(box) {
    var table = box.querySelector("table");
    var caption = table && (table.getAttribute("aria-label") || (table.caption && table.caption.textContent));
    if (caption) { return caption.trim(); }
    for (var el = box; el && el !== document.body; el = el.parentElement) {
      for (var prev = el.previousElementSibling; prev; prev = prev.previousElementSibling) {
        if (/^H[1-4]$/.test(prev.tagName)) { return prev.textContent.trim(); }
        var inner = prev.querySelector && prev.querySelectorAll("h1, h2, h3, h4");
        if (inner && inner.length) { return inner[inner.length - 1].textContent.trim(); }
      }
    }
    return "Table";
  }

  function wrapTables(root) {
    if (!root.querySelectorAll) { return; }
    var tables = root.matches && root.matches("table.grid") ? [root] : root.querySelectorAll("table.grid");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.parentElement || table.parentElement.closest(SCROLLERS)) { return; }
      var box = document.createElement("div");
      box.className = "scroll";
      table.parentElement.insertBefore(box, table);
      box.appendChild(table);
    });
  }

  /* A box that scrolls takes focus (so arrow keys scroll it) and names itself as a region; one that
     fits gives back what this added, so it is no extra stop for the Tab key. */
  function markScrollable() {
    document.querySelectorAll(SCROLLERS).forEach(function (box) {
      var overflowing = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      if (overflowing && !box.hasAttribute("tabindex")) {
        box.tabIndex = 0;
        box.dataset.scrollFocus = "1";
        if (!box.hasAttribute("role")) { box.setAttribute("role", "region"); box.dataset.scrollRole = "1"; }
        if (!box.hasAttribute("aria-label")) { box.setAttribute("aria-label", boxName(box)); box.dataset.scrollLabel = "1"; }
      } else if (!overflowing && box.dataset.scrollFocus) {
        box.removeAttribute("tabindex");
        delete box.dataset.scrollFocus;
        if (box.dataset.scrollRole) { box.removeAttribute("role"); delete box.dataset.scrollRole; }
        if (box.dataset.scrollLabel) { box.removeAttribute("aria-label"); delete box.dataset.scrollLabel; }
      }
    });
  }

  /* Parts of a page that are fetched again when a stream speaks (htmx outerHTML swaps) say what
     changed through data-announce; a polite live region that is never swapped reads it out. */
  var announced = {};
  function announceChanges(initial) {
    var region = document.getElementById("announcer");
    document.querySelectorAll("[data-announce]").forEach(function (el) {
      var key = el.id || el.dataset.announceKey || "page", text = el.dataset.announce;
      if (!initial && region && announced[key] !== undefined && announced[key] !== text) { region.textContent = text; }
      announced[key] = text;
    });
  }

  var pending = null;
  function markSoon() {
    if (pending !== null) { return; }
    pending = window.setTimeout(function () { pending = null; markScrollable(); }, 100);
  }

  document.addEventListener("DOMContentLoaded", function () {
    navigationMenu();
    wrapTables(document.body);
    markScrollable();
    window.addEventListener("resize", markSoon);
    document.addEventListener("toggle", markSoon, true);  // <details> opening shows its tables
    /* Wrap tables that arrive later (htmx swaps, scripts) in the microtask after they are added,
       before the browser lays them out: an htmx:load handler would leave them bare until settle. */
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        Array.prototype.forEach.call(record.addedNodes, function (node) {
          if (node.nodeType === 1 && !node.closest(".log")) { wrapTables(node); }  // log rows: never tables
        });
      });
      markSoon();
    }).observe(document.body, { childList: true, subtree: true });
    announceChanges(true);
    document.body.addEventListener("htmx:afterSettle", function () { markSoon(); announceChanges(false); });
  });
})();
