// Renders every plotly figure embedded as JSON in the page:
//   <div id="fig-1" class="chart"></div>
//   <script type="application/json" class="plotly-figure" data-target="fig-1">{"data":[...],"layout":{...}}</script>
// No inline script (CSP): the figure is data, this file is the only code. Re-runs after htmx swaps.
(function () {
  function render(root) {
    if (typeof Plotly === "undefined") { return; }
    root.querySelectorAll('script.plotly-figure[type="application/json"]').forEach(function (node) {
      var target = document.getElementById(node.dataset.target);
      if (!target || target.dataset.rendered === "1") { return; }
      var figure = JSON.parse(node.textContent);
      Plotly.newPlot(target, figure.data || [], figure.layout || {}, {displaylogo: false, displayModeBar: false, responsive: true});
      target.dataset.rendered = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { render(document); });
  document.addEventListener("htmx:afterSettle", function (event) { render(event.target); });
})();
