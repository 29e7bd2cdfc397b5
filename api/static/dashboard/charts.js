// Draws the dashboard's charts with the vendored Chart.js from data the server wrote into
// <script type="application/json" data-chart="ID"> beside each <canvas id="ID">. The
// table next to each chart carries the same figures, so nothing depends on this script.
(function () {
  "use strict";
  function draw() {
    if (typeof Chart === "undefined") { return; }
    document.querySelectorAll("script[data-chart]").forEach(function (node) {
      var canvas = document.getElementById(node.dataset.chart);
      if (!canvas || canvas.dataset.drawn) { return; }
      var spec = JSON.parse(node.textContent);
      canvas.dataset.drawn = "1";
      new Chart(canvas, {
        type: spec.type || "bar",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          indexAxis: spec.horizontal ? "y" : "x",
          plugins: { legend: { display: spec.datasets.length > 1 } },
          scales: spec.max ? { y: { min: 0, max: spec.max } } : {}
        }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
  document.addEventListener("htmx:afterSwap", draw);
})();
