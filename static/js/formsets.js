// Formsets with an "add a row" button: the empty row in a <template> is copied with the next index
// (Django's __prefix__), and the management form's TOTAL_FORMS follows. Without script the page
// still offers one empty row per save.
(function () {
  "use strict";
  document.querySelectorAll("fieldset").forEach(function (fieldset) {
    var add = fieldset.querySelector(".js-param-add");
    var empty = fieldset.querySelector("template.js-param-empty");
    var rows = fieldset.querySelector(".js-param-rows");
    var total = fieldset.querySelector("input[name$='-TOTAL_FORMS']");
    if (!add || !empty || !rows || !total) return;
    add.addEventListener("click", function () {
      var index = parseInt(total.value, 10) || 0;
      var html = empty.innerHTML.replace(/__prefix__/g, String(index));
      var holder = document.createElement("tbody");
      holder.innerHTML = html;
      var row = holder.firstElementChild;
      rows.appendChild(row);
      total.value = String(index + 1);
      var first = row.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  });
})();
