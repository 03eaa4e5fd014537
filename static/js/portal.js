/* Ops portal: the live connection and small page behaviours. No framework, no inline scripts. */
(function () {
  "use strict";

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /* One websocket per page, many subscriptions. Reconnects with backoff (at most RETRY_MAX_MS
     apart) and resubscribes; ordered streams resume from the last sequence number seen, so nothing
     is missed or repeated, and each subscription's onSubscribed runs again so a page can re-read
     what an unordered stream may have said while the socket was down. After OFFLINE_AFTER_MS
     without a socket a banner says since when the page is offline. */
  var RETRY_MAX_MS = 5000;
  var OFFLINE_AFTER_MS = 3000;

  function PortalSocket(url) {
    this.url = url;
    this.subs = {};
    this.nextId = 1;
    this.retry = 0;
    this.listeners = [];
    this.offlineSince = null;
    this.offlineTimer = null;
    this.everOpen = false;
    this.connect();
  }

  PortalSocket.prototype.connect = function () {
    var self = this;
    this.ws = new WebSocket(this.url);
    this.ws.onopen = function () {
      self.retry = 0;
      self.online();
      Object.keys(self.subs).forEach(function (id) { self.send(self.subscribeMessage(id)); });
    };
    this.ws.onmessage = function (message) {
      var data = JSON.parse(message.data);
      var sub = data.id && self.subs[data.id];
      if (data.type === "events" && sub) {
        data.items.forEach(function (item) {
          if (typeof item.seq === "number") { sub.since = Math.max(sub.since, item.seq); }
        });
        sub.onEvents(data.items);
      } else if (data.type === "subscribed" && sub && sub.onSubscribed) {
        sub.onSubscribed();
      } else if (data.type === "error" && sub && sub.onError) {
        sub.onError(data);
      }
      self.listeners.forEach(function (fn) { fn(data); });
    };
    this.ws.onclose = function (event) {
      self.offline(event.code === 4401);
      var delay = Math.min(RETRY_MAX_MS, 500 * Math.pow(2, self.retry++)) * (0.8 + Math.random() * 0.4);
      window.setTimeout(function () { self.connect(); }, delay);
    };
  };

  function clock(date) {
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
  }

  PortalSocket.prototype.offline = function (revoked) {
    var self = this;
    if (this.offlineSince === null) {
      this.offlineSince = new Date();
      this.setState("reconnecting");
      this.offlineTimer = window.setTimeout(function () { self.showBanner(); }, revoked ? 0 : OFFLINE_AFTER_MS);
    }
  };

  PortalSocket.prototype.showBanner = function () {
    var banner = document.getElementById("offline-banner");
    this.setState("offline");
    if (banner) {
      banner.textContent = "Offline since " + clock(this.offlineSince) + ", retrying… What this page shows may be out of date.";
      banner.hidden = false;
    }
  };

  PortalSocket.prototype.online = function () {
    var banner = document.getElementById("offline-banner");
    window.clearTimeout(this.offlineTimer);
    if (banner) { banner.hidden = true; banner.textContent = ""; }
    var wasOffline = this.offlineSince !== null && this.everOpen;
    this.offlineSince = null;
    this.everOpen = true;
    this.setState("live");
    if (wasOffline) { document.dispatchEvent(new CustomEvent("portal:reconnected")); }
  };

  PortalSocket.prototype.setState = function (state) {
    var el = document.getElementById("live-indicator");
    if (el) { el.textContent = state; el.className = "live-indicator " + state; }
    document.body.dataset.live = state;
  };

  PortalSocket.prototype.send = function (obj) {
    if (this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(obj)); }
  };

  PortalSocket.prototype.subscribeMessage = function (id) {
    var sub = this.subs[id];
    return { action: "subscribe", id: id, stream: sub.stream, params: sub.params, since: sub.since };
  };

  PortalSocket.prototype.subscribe = function (stream, params, onEvents, options) {
    var id = "s" + this.nextId++;
    options = options || {};
    this.subs[id] = { stream: stream, params: params || {}, since: options.since || 0,
                      onEvents: onEvents, onError: options.onError, onSubscribed: options.onSubscribed };
    this.send(this.subscribeMessage(id));
    return id;
  };

  PortalSocket.prototype.unsubscribe = function (id) {
    delete this.subs[id];
    this.send({ action: "unsubscribe", id: id });
  };

  /* A function that asks the htmx element matched by `selector` to fetch itself again (its
     hx-trigger includes "refresh"), at most once per `delay` ms however many events call it. */
  function refresher(selector, delay) {
    var timer = null;
    return function () {
      if (timer !== null) { return; }
      timer = window.setTimeout(function () {
        timer = null;
        var el = document.querySelector(selector);
        if (el && window.htmx) { window.htmx.trigger(el, "refresh"); }
      }, delay === undefined ? 250 : delay);
    };
  }

  var portal = window.OpsPortal = { csrfToken: csrfToken, socket: null, refresher: refresher, pings: {} };

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/";
  }

  function formatTime(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  function feedLine(el, text, className) {
    var li = document.createElement("li");
    li.textContent = text;
    if (className) { li.className = className; }
    el.insertBefore(li, el.firstChild);
    while (el.children.length > 50) { el.removeChild(el.lastChild); }
    return li;
  }

  function statusFeed(el) {
    portal.socket.subscribe("status", el.dataset.params ? JSON.parse(el.dataset.params) : {}, function (items) {
      items.forEach(function (item) {
        if (item.kind === "pong") {
          var ms = item.sent ? Math.round((item.answered - item.sent) * 1000) : null;
          var asked = portal.pings[item.request_id];
          var text = formatTime(item.answered) + " worker " + item.worker + " answered" + (ms !== null ? " in " + ms + " ms" : "");
          if (asked) {  // the answer to this page's question: it replaces "waiting for an answer"
            window.clearTimeout(asked.timer);
            delete portal.pings[item.request_id];
            asked.li.textContent = text;
            asked.li.className = "pong";
          } else {
            feedLine(el, text, "pong");
          }
        } else {
          feedLine(el, (item.time ? formatTime(item.time) + " " : "") + (item.message || JSON.stringify(item)));
        }
      });
    });
  }

  /* "Ask a worker to answer": the question shows in the feed at once, and when no worker answers
     within data-timeout seconds the line says so. */
  function pingButton(button) {
    var feed = document.getElementById("status-feed");
    var timeout = parseInt(button.dataset.timeout, 10) || 10;
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() }, body: "{}"
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(function (body) {
        if (!feed) { return; }
        var li = feedLine(feed, clock(new Date()) + " asked a worker to answer… waiting up to " + timeout + " s", "ping-pending");
        portal.pings[body.request_id] = {
          li: li,
          timer: window.setTimeout(function () {
            delete portal.pings[body.request_id];
            li.textContent = clock(new Date()) + " no worker answered within " + timeout +
              " s: is a worker running and connected to Redis?";
            li.className = "ping-unanswered bad";
          }, timeout * 1000)
        };
      }).catch(function (error) {
        if (feed) { feedLine(feed, clock(new Date()) + " the request failed: " + error.message, "bad"); }
        else { window.alert("The request failed: " + error.message); }
      }).finally(function () { button.disabled = false; });
    });
  }

  /* Counts in the navigation (approvals waiting for me, alerts firing, jobs running): fetched
     again, at most once a second, whenever a stream says something they count may have changed. */
  function navCounts() {
    var refresh = refresher("#nav-counts", 1000);
    ["approvals", "alerts", "jobs"].forEach(function (stream) {
      portal.socket.subscribe(stream, {}, refresh, { onSubscribed: refresh, onError: function () {} });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("live-indicator")) { return; }  // signed out
    portal.socket = new PortalSocket(wsUrl());
    document.querySelectorAll("[data-stream='status']").forEach(statusFeed);
    if (document.getElementById("nav-counts")) { navCounts(); }
    var ping = document.getElementById("ping-worker");
    if (ping) { pingButton(ping); }
    document.dispatchEvent(new CustomEvent("portal:ready"));
  });
})();
