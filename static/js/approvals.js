/* The approvals inbox: counts and new requests arrive live. */
(function () {
  "use strict";
  document.addEventListener("portal:ready", function () {
    var table = document.getElementById("approvals-waiting");
    if (!table) { return; }
    window.OpsPortal.socket.subscribe("approvals", {}, function (items) {
      items.forEach(function (item) {
        var row = table.querySelector("tr[data-approval='" + item.id + "']");
        if (row && item.state !== "pending") { row.remove(); return; }
        if (row) { row.querySelector(".js-count").textContent = item.approvals + "/" + item.required; return; }
        if (item.state === "pending") { document.getElementById("approvals-new").hidden = false; }
      });
    });
  });
})();
