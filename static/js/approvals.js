/* The approvals inbox: what waits for me (and my own requests) is fetched again, server-rendered,
   whenever the approvals stream says a request opened, got a decision or ended. */
(function () {
  "use strict";
  document.addEventListener("portal:ready", function () {
    if (!document.getElementById("approvals-live")) { return; }
    var refresh = window.OpsPortal.refresher("#approvals-live");
    window.OpsPortal.socket.subscribe("approvals", {}, refresh, { onSubscribed: refresh });
    document.addEventListener("portal:reconnected", refresh);
  });
})();
