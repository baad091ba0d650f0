// Monitoring page: fetch /v1/monitoring and draw request rate, latency percentiles, RMSLE and range coverage
// over time with the Chart.js served from this server's /static/vendor. Tables are rendered on the server.
// Buckets without requests come as null latencies: lines break there (spanGaps off), they are not drawn across.
"use strict";

const COLORS = { rate: "#9db8d9", p50: "#16702e", p95: "#c27c0e", p99: "#a3261c", rmsle: "#2c4f8a", coverage: "#16702e", stated: "#888" };

function pad(n) { return String(n).padStart(2, "0"); }

function bucketLabel(iso, seconds) {
  const d = new Date(iso);
  const day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
  return seconds >= 86400 ? day : day + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
}

function widthText(seconds) {
  if (seconds >= 86400) return (seconds / 86400) + " day" + (seconds > 86400 ? "s" : "");
  if (seconds >= 3600) return (seconds / 3600) + " hour" + (seconds > 3600 ? "s" : "");
  return (seconds / 60) + " minute" + (seconds > 60 ? "s" : "");
}

function line(label, data, color, axis, extra) {
  return Object.assign({ type: "line", label: label, data: data, borderColor: color, backgroundColor: color, yAxisID: axis, pointRadius: 3, tension: 0.2, spanGaps: false }, extra || {});
}

function draw(canvas, config) {
  config.options = Object.assign({
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
  }, config.options);
  new window.Chart(canvas, config);
  canvas.dataset.drawn = "true";
}

function drawTraffic(traffic) {
  const canvas = document.getElementById("traffic-chart");
  const points = traffic.series || [];
  if (!canvas || traffic.state !== "ok" || points.length === 0) return;
  const labels = points.map((b) => bucketLabel(b.start, traffic.bucket_seconds));
  draw(canvas, {
    data: {
      labels: labels,
      datasets: [
        { type: "bar", label: "requests / minute", data: points.map((b) => b.per_minute), backgroundColor: COLORS.rate, yAxisID: "rate", order: 2 },
        line("p50 latency (ms)", points.map((b) => b.p50_ms), COLORS.p50, "latency", { order: 1 }),
        line("p95 latency (ms)", points.map((b) => b.p95_ms), COLORS.p95, "latency", { order: 1 }),
        line("p99 latency (ms)", points.map((b) => b.p99_ms), COLORS.p99, "latency", { order: 1 }),
      ],
    },
    options: {
      spanGaps: false,
      scales: {
        rate: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "requests / minute" } },
        latency: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "latency (ms)" } },
      },
    },
  });
}

// Every bucket from the first to the last; one without sold prices has null figures (a gap in the lines).
function everyBucket(buckets, seconds) {
  if (buckets.length === 0) return [];
  const byStart = new Map(buckets.map((b) => [Date.parse(b.start), b]));
  const first = Date.parse(buckets[0].start);
  const last = Date.parse(buckets[buckets.length - 1].start);
  const out = [];
  for (let t = first; t <= last; t += seconds * 1000) {
    out.push(byStart.get(t) || { start: new Date(t).toISOString(), sold: 0, rmsle: null, coverage: null });
  }
  return out;
}

function drawAccuracy(accuracy) {
  const canvas = document.getElementById("accuracy-chart");
  if (!canvas || accuracy.state !== "ok" || accuracy.buckets.length === 0) return;
  const buckets = everyBucket(accuracy.buckets, accuracy.bucket_seconds);
  const labels = buckets.map((b) => bucketLabel(b.start, accuracy.bucket_seconds));
  const datasets = [
    line("RMSLE", buckets.map((b) => b.rmsle), COLORS.rmsle, "rmsle"),
    line("range coverage", buckets.map((b) => b.coverage), COLORS.coverage, "coverage"),
  ];
  if (accuracy.stated_coverage !== null) {
    datasets.push(line("stated coverage", labels.map(() => accuracy.stated_coverage), COLORS.stated, "coverage", { borderDash: [6, 4], pointRadius: 0 }));
  }
  draw(canvas, {
    type: "line",
    data: { labels: labels, datasets: datasets },
    options: {
      scales: {
        rmsle: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "RMSLE" } },
        coverage: { type: "linear", position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: "coverage" } },
      },
    },
  });
}

function showError(message) {
  const box = document.getElementById("chart-error");
  box.textContent = message;
  box.hidden = false;
}

async function main() {
  for (const span of document.querySelectorAll(".bucket-width")) span.textContent = widthText(Number(span.dataset.seconds));
  if (typeof window.Chart !== "function") {
    showError("The chart library did not load; the tables above are complete.");
    return;
  }
  let overview;
  try {
    const response = await fetch(document.querySelector("main").dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    overview = await response.json();
  } catch (err) {
    showError("Could not load the monitoring figures for the charts (" + err.message + ").");
    return;
  }
  drawTraffic(overview.traffic);
  drawAccuracy(overview.accuracy);
  document.body.dataset.charts = "done";
}

main();
