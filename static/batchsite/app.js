// Batchsite dashboard glue. The server renders every fragment; this file only
// (1) tells the live socket what the page shows, (2) feeds Plotly the numbers the
// fragments carry, (3) keeps log viewers scrolled while they follow, and (4) does
// what inline handlers would (the Content-Security-Policy allows no inline script):
// forms with data-confirm ask first, selects with data-submit-on-change submit.
(function () {
  "use strict";
  var socket = null;

  function json(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  // --- the live socket ---------------------------------------------------------------

  function pageState() {
    var state = {};
    var table = document.getElementById("task-table");
    if (table) {
      state.visible = Array.prototype.map.call(table.querySelectorAll("tr[data-pk]"), function (tr) {
        return Number(tr.dataset.pk);
      });
    }
    var viewers = document.querySelectorAll("pre.log[data-log]");
    if (viewers.length) {
      state.logs = {};
      viewers.forEach(function (pre) { state.logs[pre.dataset.log] = logEnd(pre); });
      var follow = document.getElementById("follow");
      state.follow = follow ? follow.checked : true;
    }
    return state;
  }

  function tell() {
    if (socket) socket.send(JSON.stringify(pageState()));
  }

  document.addEventListener("htmx:wsOpen", function (e) {
    socket = e.detail.socketWrapper;
    document.querySelectorAll(".live").forEach(function (el) { el.classList.add("on"); el.title = "live"; });
    tell();
  });
  document.addEventListener("htmx:wsClose", function (e) {
    socket = null;
    document.querySelectorAll(".live").forEach(function (el) { el.classList.remove("on"); el.title = "reconnecting"; });
    // htmx reconnects after abnormal closes; a server that restarts says "going away" (1001).
    var code = e.detail.event && e.detail.event.code;
    if (code === 1001 || code === 1000) {
      setTimeout(function () { e.detail.socketWrapper.reconnect(); }, 500 + Math.random() * 1000);
    }
  });

  // --- charts ------------------------------------------------------------------------

  var plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var baseLayout = {
    margin: { l: 48, r: 12, t: 8, b: 36 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    legend: { orientation: "h", y: -0.22 }, font: { family: "system-ui, sans-serif", size: 12 },
    xaxis: { gridcolor: "#eaeef2" }, yaxis: { gridcolor: "#eaeef2", rangemode: "tozero" },
  };
  var COLORS = { active: "#8c959f", running: "#54aeff", succeeded: "#2da44e", failed: "#e5534b" };
  var STACK = ["succeeded", "failed", "running", "active"];

  function layout(extra) { return Object.assign({}, baseLayout, extra || {}); }

  function drawTimeline() {
    var el = document.getElementById("timeline-chart");
    var data = json("timeline-data");
    if (!el || !data || !window.Plotly) return;
    var traces = STACK.map(function (name) {
      return { x: data.x, y: data[name], name: name, type: "scatter", mode: "lines", stackgroup: "counts",
               line: { width: 1, color: COLORS[name] }, fillcolor: COLORS[name] + "b0" };
    });
    Plotly.newPlot(el, traces, layout({ hovermode: "x unified" }), plotConfig);
  }

  function drawShare(counts) {
    var el = document.getElementById("share-chart");
    if (!el || !window.Plotly) return;
    var done = counts.succeeded + counts.failed;
    var trace = { type: "pie", hole: 0.62, sort: false, textinfo: done ? "percent" : "none",
                  labels: ["succeeded", "failed"], values: done ? [counts.succeeded, counts.failed] : [1, 0],
                  marker: { colors: done ? [COLORS.succeeded, COLORS.failed] : ["#eaeef2", "#eaeef2"] },
                  hoverinfo: done ? "label+value+percent" : "none" };
    Plotly.react(el, [trace], layout({ showlegend: true, margin: { l: 8, r: 8, t: 8, b: 8 },
      annotations: [{ text: done ? String(done) + "<br>done" : "none<br>done", showarrow: false, font: { size: 15 } }] }),
      plotConfig);
  }

  // A new counts fragment carries the counts it shows: one more point on the timeline.
  function onSummary(summary) {
    var counts = JSON.parse(summary.dataset.counts);
    drawShare(counts);
    var el = document.getElementById("timeline-chart");
    if (!el || !el.data || !window.Plotly) return;
    var at = new Date(Number(summary.dataset.at) * 1000).toISOString();
    Plotly.extendTraces(el, {
      x: STACK.map(function () { return [at]; }),
      y: STACK.map(function (name) { return [counts[name]]; }),
    }, STACK.map(function (_, i) { return i; }), 5000);
  }

  function drawDurations() {
    var data = json("durations-data");
    var hist = document.getElementById("histogram-chart");
    var scatter = document.getElementById("scatter-chart");
    if (!data || !window.Plotly) return;
    if (hist) {
      Plotly.react(hist, [
        { type: "bar", x: data.histogram.labels, y: data.histogram.succeeded, name: "succeeded", marker: { color: COLORS.succeeded },
          customdata: data.histogram.ranges, hovertemplate: "%{customdata}: %{y} succeeded<extra></extra>" },
        { type: "bar", x: data.histogram.labels, y: data.histogram.failed, name: "failed", marker: { color: COLORS.failed },
          customdata: data.histogram.ranges, hovertemplate: "%{customdata}: %{y} failed<extra></extra>" },
      ], layout({ barmode: "stack", bargap: 0.05, xaxis: { tickangle: -40, automargin: true, nticks: 8 } }), plotConfig);
    }
    if (scatter) {
      function trace(points, name, symbol) {
        // SVG "scatter", not "scattergl": WebGL traces compile their shaders with
        // Function(), which a script-src without 'unsafe-eval' refuses. The server
        // sends at most ~2,000 points, which SVG draws well.
        return { type: "scatter", mode: "markers", name: name, x: points.map(function (p) { return p[0]; }),
                 y: points.map(function (p) { return p[1]; }), text: points.map(function (p) { return p[2]; }),
                 marker: { color: COLORS[name], size: 6, symbol: symbol, opacity: 0.75 },
                 hovertemplate: "%{text}<br>%{y:.2f} s<extra></extra>" };
      }
      Plotly.react(scatter, [trace(data.scatter.ok, "succeeded", "circle"), trace(data.scatter.failed, "failed", "x")],
        layout({ yaxis: { title: { text: "run time (s)" }, gridcolor: "#eaeef2", rangemode: "tozero" } }), plotConfig);
    }
    drawNodeTimeline(json("node-timeline-data"));
  }

  // The node timeline: a row per node; a bar per run (few runs), or runs counted per node and
  // time unit (many), failures marked. The server bounds what it sends (jobs/node_timeline.py).
  function drawNodeTimeline(data) {
    var el = document.getElementById("node-timeline-chart");
    if (!el || !data || !window.Plotly) return;
    el.closest(".panel").hidden = data.mode === "empty";
    if (data.mode === "empty") return;
    var rows = { type: "category", categoryorder: "array", categoryarray: data.nodes.slice().reverse(), automargin: true };
    var height = Math.max(160, 28 * data.nodes.length + 70);
    if (data.mode === "bars") {
      var traces = ["succeeded", "failed", "running"].map(function (outcome) {
        var bars = data.bars.filter(function (b) { return b[4] === outcome; });
        return { type: "bar", orientation: "h", name: outcome, y: bars.map(function (b) { return b[0]; }),
                 base: bars.map(function (b) { return b[1]; }), x: bars.map(function (b) { return Math.max(b[2], 50); }),
                 text: bars.map(function (b) { return b[3]; }), textposition: "none",
                 // Runs that overlap on a node (its slots) stay apart by their outlines.
                 marker: { color: COLORS[outcome], opacity: 0.85, line: { color: "#fff", width: 1 } },
                 hovertemplate: "%{text}<br>%{base|%H:%M:%S} · %{x:,.0f} ms<extra>" + outcome + "</extra>" };
      });
      Plotly.react(el, traces, layout({ barmode: "overlay", height: height, yaxis: rows,
                                        xaxis: { type: "date", gridcolor: "#eaeef2" } }), plotConfig);
      return;
    }
    var cells = data.cells;
    var ran = { type: "scatter", mode: "markers", name: "runs started", y: cells.map(function (c) { return c[0]; }),
                x: cells.map(function (c) { return c[1]; }), text: cells.map(function (c) { return c[2] + " runs"; }),
                marker: { symbol: "square", color: COLORS.running, opacity: 0.8,
                          size: cells.map(function (c) { return 6 + Math.min(10, Math.log2(1 + c[2])); }) },
                hovertemplate: "%{y} · %{x}<br>%{text}<extra></extra>" };
    var bad = cells.filter(function (c) { return c[3] > 0; });
    var failed = { type: "scatter", mode: "markers", name: "failed", y: bad.map(function (c) { return c[0]; }),
                   x: bad.map(function (c) { return c[1]; }), text: bad.map(function (c) { return c[3] + " failed"; }),
                   marker: { symbol: "x", color: COLORS.failed, size: 9 },
                   hovertemplate: "%{y} · %{x}<br>%{text}<extra></extra>" };
    Plotly.react(el, [ran, failed], layout({ height: height, yaxis: rows, xaxis: { type: "date", gridcolor: "#eaeef2" } }),
                 plotConfig);
  }

  // --- pools: nodes over time, a node's host usage ---------------------------------------

  var NODE_COLORS = { running: "#0969da", idle: "#2da44e", starting: "#d4a72c", leaving: "#afb8c1", failed: "#cf222e" };
  var NODE_STACK = ["running", "idle", "starting", "leaving", "failed"];

  function drawPoolTimeline() {
    var el = document.getElementById("pool-timeline-chart");
    var data = json("pool-timeline-data");
    if (!el || !data || !window.Plotly) return;
    var traces = NODE_STACK.map(function (name) {
      return { x: data.x, y: data[name], name: name, type: "scatter", mode: "lines", stackgroup: "nodes",
               line: { width: 0, color: NODE_COLORS[name], shape: "hv" }, fillcolor: NODE_COLORS[name] + "c0" };
    });
    var most = 0;  // nodes are whole: a small pool's axis counts in ones
    data.x.forEach(function (_, i) {
      most = Math.max(most, NODE_STACK.reduce(function (sum, name) { return sum + data[name][i]; }, 0));
    });
    Plotly.newPlot(el, traces, layout({ hovermode: "x unified",
      yaxis: { gridcolor: "#eaeef2", rangemode: "tozero", dtick: most < 8 ? 1 : null } }), plotConfig);
  }

  // A new pool summary carries the counts it shows: one more point of nodes over time.
  function onPoolSummary(summary) {
    var el = document.getElementById("pool-timeline-chart");
    if (!el || !el.data || !window.Plotly || !summary.dataset.at) return;
    var counts = JSON.parse(summary.dataset.counts);
    var at = new Date(Number(summary.dataset.at) * 1000).toISOString();
    Plotly.extendTraces(el, {
      x: NODE_STACK.map(function () { return [at]; }),
      y: NODE_STACK.map(function (name) { return [counts[name]]; }),
    }, NODE_STACK.map(function (_, i) { return i; }), 5000);
  }

  function drawUsage() {
    var el = document.getElementById("usage-chart");
    var data = json("usage-data");
    if (!el || !data || !window.Plotly) return;
    function line(values, name, color, extra) {
      return Object.assign({ x: data.x, y: values, name: name, type: "scatter", mode: "lines",
                             line: { width: 1.5, color: color } }, extra || {});
    }
    Plotly.react(el, [line(data.cpu, "CPU %", "#0969da"), line(data.memory, "memory %", "#8250df"),
                      line(data.load, "load", "#bf8700", { yaxis: "y2", line: { width: 1.5, color: "#bf8700", dash: "dot" } })],
      layout({ hovermode: "x unified", margin: { l: 40, r: 40, t: 8, b: 36 },
               yaxis: { range: [0, 100], gridcolor: "#eaeef2", ticksuffix: "%" },
               yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false } }), plotConfig);
  }

  // --- log viewers ---------------------------------------------------------------------

  function logEnd(pre) {
    var parts = pre.querySelectorAll("[data-end]");
    return parts.length ? Number(parts[parts.length - 1].dataset.end) : Number(pre.dataset.end || 0);
  }

  function following() {
    var follow = document.getElementById("follow");
    return !follow || follow.checked;
  }

  function scrollToEnd(pre) { pre.scrollTop = pre.scrollHeight; }

  document.addEventListener("change", function (e) {
    if (e.target.id === "follow") {
      tell();
      if (e.target.checked) document.querySelectorAll("pre.log").forEach(scrollToEnd);
    }
    if (e.target.id === "select-all") {
      document.querySelectorAll("#task-table input[name=task]").forEach(function (box) { box.checked = e.target.checked; });
    }
    var all = e.target.dataset && e.target.dataset.selectAll;
    if (all && e.target.form) {
      e.target.form.querySelectorAll("input[name=" + all + "]").forEach(function (box) { box.checked = e.target.checked; });
    }
  });

  // --- what inline handlers would do ----------------------------------------------------

  // The page's CSRF token, the one htmx sends with every request (hx-headers on <body>).
  function pageToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (err) { return null; }
  }

  // Delegated from the document, so forms and selects that live updates swap in work too.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    // A button may ask its own question (one form, several actions).
    var question = (e.submitter && e.submitter.dataset.confirm) || (form.dataset && form.dataset.confirm);
    if (question && !window.confirm(question)) { e.preventDefault(); return; }
    // Fragments the live socket swaps in are rendered without a request, so their forms
    // carry no CSRF token: give a plain POST form the page's own.
    if (form.method === "post" && !form.querySelector("input[name=csrfmiddlewaretoken]") && pageToken()) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = "csrfmiddlewaretoken"; input.value = pageToken();
      form.appendChild(input);
    }
  }, true);

  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-submit-on-change") && e.target.form) {
      e.target.form.requestSubmit();  // a submit event: htmx-driven forms stay htmx requests
    }
  });

  // --- wiring ----------------------------------------------------------------------------

  // htmx fires oobAfterSwap on each element swapped in, and again on the earlier
  // ones for every later swap of the same message: act once per element.
  document.addEventListener("htmx:oobAfterSwap", function (e) {
    var el = e.target;
    if (!el || !el.dataset || el.dataset.seen) return;
    el.dataset.seen = "1";
    if (el.id === "job-summary") onSummary(el);
    if (el.id === "durations") drawDurations();
    if (el.id === "pool-summary") onPoolSummary(el);
    if (el.id === "usage") drawUsage();
    var log = el.closest && el.closest("pre.log");
    if (log && following()) scrollToEnd(log);
  });

  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target.id === "task-table") tell();
    if (e.target.id === "durations") drawDurations();
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawTimeline();
    var summary = document.getElementById("job-summary");
    if (summary) drawShare(JSON.parse(summary.dataset.counts));
    drawDurations();
    drawPoolTimeline();
    drawUsage();
    document.querySelectorAll("pre.log").forEach(scrollToEnd);
  });
})();
