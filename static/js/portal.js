/* Ops portal: the live connection and small page behaviours. No framework, no inline scripts. */
(function () {
  "use strict";

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /* One websocket per page, many subscriptions. Reconnects with backoff and resubscribes;
     ordered streams resume from the last sequence number seen, so nothing is missed or repeated. */
  function PortalSocket(url) {
    this.url = url;
    this.subs = {};
    this.nextId = 1;
    this.retry = 0;
    this.listeners = [];
    this.connect();
  }

  PortalSocket.prototype.connect = function () {
    var self = this;
    this.ws = new WebSocket(this.url);
    this.ws.onopen = function () {
      self.retry = 0;
      self.setState("live");
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
      } else if (data.type === "error" && sub && sub.onError) {
        sub.onError(data);
      }
      self.listeners.forEach(function (fn) { fn(data); });
    };
    this.ws.onclose = function (event) {
      self.setState(event.code === 4401 || event.code === 1006 && self.retry > 5 ? "offline" : "reconnecting");
      var delay = Math.min(30000, 500 * Math.pow(2, self.retry++));
      window.setTimeout(function () { self.connect(); }, delay);
    };
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
                      onEvents: onEvents, onError: options.onError };
    this.send(this.subscribeMessage(id));
    return id;
  };

  PortalSocket.prototype.unsubscribe = function (id) {
    delete this.subs[id];
    this.send({ action: "unsubscribe", id: id });
  };

  var portal = window.OpsPortal = { csrfToken: csrfToken, socket: null };

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/";
  }

  function formatTime(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  function statusFeed(el) {
    portal.socket.subscribe("status", el.dataset.params ? JSON.parse(el.dataset.params) : {}, function (items) {
      items.forEach(function (item) {
        var li = document.createElement("li");
        var text;
        if (item.kind === "pong") {
          var ms = item.sent ? Math.round((item.answered - item.sent) * 1000) : null;
          text = formatTime(item.answered) + " worker " + item.worker + " answered" + (ms !== null ? " in " + ms + " ms" : "");
          li.className = "pong";
        } else {
          text = (item.time ? formatTime(item.time) + " " : "") + (item.message || JSON.stringify(item));
        }
        li.textContent = text;
        el.insertBefore(li, el.firstChild);
        while (el.children.length > 50) { el.removeChild(el.lastChild); }
      });
    });
  }

  function pingButton(button) {
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() }, body: "{}"
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
      }).catch(function (error) {
        window.alert("The request failed: " + error.message);
      }).finally(function () { button.disabled = false; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("live-indicator")) { return; }  // signed out
    portal.socket = new PortalSocket(wsUrl());
    document.querySelectorAll("[data-stream='status']").forEach(statusFeed);
    var ping = document.getElementById("ping-worker");
    if (ping) { pingButton(ping); }
    document.dispatchEvent(new CustomEvent("portal:ready"));
  });
})();
