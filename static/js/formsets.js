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
      // A copy of the template's nodes (never its markup parsed again): only the attributes that
      // carry Django's __prefix__ change.
      var row = empty.content.firstElementChild.cloneNode(true);
      [row].concat(Array.prototype.slice.call(row.querySelectorAll("*"))).forEach(function (node) {
        ["name", "id", "for", "aria-describedby"].forEach(function (attr) {
          var value = node.getAttribute(attr);
          if (value && value.indexOf("__prefix__") !== -1) {
            node.setAttribute(attr, value.replace(/__prefix__/g, String(index)));
          }
        });
      });
      rows.appendChild(row);
      total.value = String(index + 1);
      var first = row.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  });
})();
