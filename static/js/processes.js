/* Processes pages: when a scan of a shown host is stored (the "processes" stream), reload the
   live parts of the page (elements with data-live-scope and an id) from the server, at most once
   a second. Forms stay outside them, so nothing typed is lost. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 1000;

  function parts(root) {
    return Array.prototype.slice.call(root.querySelectorAll("[data-live-scope][id]"));
  }

  function reload() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        parts(document).forEach(function (part) {
          var fresh = page.getElementById(part.id);
          if (fresh) { part.replaceWith(document.importNode(fresh, true)); }
        });
      })
      .catch(function () { /* the next scan tries again */ });
  }

  function start() {
    if (!parts(document).length || !window.OpsPortal || !window.OpsPortal.socket) { return; }
    var timer = null;
    function reloadSoon(delay) {
      if (timer) { return; }
      timer = window.setTimeout(function () {
        timer = null;
        reload();
      }, delay);
    }
    /* A scan stored between the page's rendering and the (re)subscription is announced to nobody:
       read the live parts again once the server confirms the subscription. */
    window.OpsPortal.socket.subscribe("processes", {}, function (items) {
      var relevant = parts(document).some(function (part) {
        return items.some(function (item) {
          return part.dataset.liveScope === "fleet" || String(item.host) === part.dataset.host;
        });
      });
      if (relevant) { reloadSoon(DEBOUNCE_MS); }
    }, { onSubscribed: function () { reloadSoon(0); } });
  }

  if (window.OpsPortal && window.OpsPortal.socket) { start(); }
  else { document.addEventListener("portal:ready", start); }
})();
