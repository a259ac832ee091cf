// svcbench report: optional conveniences only — everything is readable with scripts off.
(function () {
  "use strict";
  // Following a link to a scenario opens its (collapsed) section and every section around it.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (!el) return;
    for (var d = el.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) d.open = true;
    el.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();

  // Matrix filter: only scenarios that did not pass everywhere, or whose verdicts differ between runs.
  var only = document.getElementById("only-problems");
  if (only) {
    only.addEventListener("change", function () {
      document.querySelectorAll("#matrix tbody tr").forEach(function (row) {
        row.hidden = only.checked && row.getAttribute("data-problem") !== "1";
      });
    });
  }
  function setAll(open) {
    document.querySelectorAll("details.scenario").forEach(function (d) { d.open = open; });
  }
  var expand = document.getElementById("expand-all");
  var collapse = document.getElementById("collapse-all");
  if (expand) expand.addEventListener("click", function () { setAll(true); });
  if (collapse) collapse.addEventListener("click", function () { setAll(false); });

  // Lets automated checks tell "scripts ran to the end" from "a script threw".
  document.documentElement.setAttribute("data-report-ready", "1");
})();
