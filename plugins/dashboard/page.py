"""How the dashboard looks: one self-contained page, since the device may be offline.

The page works without JavaScript; its script refreshes it from the host's /api/readings
every few seconds, so an open browser tab costs the plugin nothing.
"""

import json
from html import escape

PROBLEMS = {
    "not-ready": "Waiting for the sensor's first reading",
    "timeout": "Sensor timeout",
    "checksum": "Sensor checksum errors",
    "unavailable": "Sensor unavailable",
    "not-granted": "Sensor pin not granted to this plugin",
}
"""What each dht22 sensor-error (and the host's sensor status) means to a person."""

STYLE = """
:root{color-scheme:dark}*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,sans-serif;background:#0f1216;color:#e6e9ef}
main{max-width:44rem;margin:0 auto;padding:1.5rem 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem;color:#7dd3fc}
#status{color:#94a3b8;margin:0 0 1.25rem;padding:.5rem 0}
.failing #status{color:#fecaca;background:#3b1212;border:1px solid #7f1d1d;border-radius:.5rem;
  padding:.5rem .75rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:1rem}
.card{background:#171b22;border:1px solid #252b35;border-radius:.75rem;padding:1rem 1.25rem;
  margin:0}
.card span,figcaption{color:#94a3b8;font-size:.85rem}
.card b{display:block;font-size:2.75rem;font-weight:600}
.failing .cards b{color:#64748b}
figure.card{margin-top:1rem}
svg{display:block;width:100%;height:8rem;margin:.5rem 0}
polyline{fill:none;stroke:#7dd3fc;stroke-width:2;vector-effect:non-scaling-stroke}
"""

SCRIPT = """
const WINDOW_S = 300, $ = (id) => document.getElementById(id);
let since = 0;
// Starts as the reading the page was rendered with, which may be the last good one.
let lastGood = STATE.taken_at_ms ? { ...STATE, taken_at: STATE.taken_at_ms / 1000 } : null;
function show(sensor, now) {
  const error = sensor.status === "ok" ? null : sensor.status;
  lastGood = sensor.reading || lastGood;
  const age = lastGood && Math.round(now - lastGood.taken_at) + " s ago";
  $("status").textContent = !error ? "Updated " + age : (PROBLEMS[error] || "Sensor " + error)
    + (lastGood ? " — last good reading " + age : "");
  $("main").classList.toggle("failing", !!error);
  if (lastGood) {
    $("temperature").textContent = lastGood.temperature_c.toFixed(1) + " °C";
    $("humidity").textContent = lastGood.humidity_pct.toFixed(1) + " %";
  }
}
function draw(points, now) {
  if (!points.length) {
    $("line").setAttribute("points", "");
    $("range").textContent = "No readings in the last 5 minutes";
    return;
  }
  const values = points.map((p) => p.temperature_c);
  const lo = Math.min(...values) - 0.5, hi = Math.max(...values) + 0.5;
  const start = points[0].taken_at, span = Math.max(now - start, 1);  // fill the width
  $("line").setAttribute("points", points.map((p) =>
    (300 * (p.taken_at - start) / span).toFixed(1) + ","
    + (100 * (hi - p.temperature_c) / (hi - lo)).toFixed(1)
  ).join(" "));
  const shown = span < 90 ? Math.round(span) + " s" : Math.round(span / 60) + " min";
  $("range").textContent = "Temperature, last " + shown + ": "
    + Math.min(...values).toFixed(1) + " to " + Math.max(...values).toFixed(1) + " °C";
}
async function refresh() {
  try {
    const data = await (await fetch("/api/readings?since=" + since)).json();
    since = data.now - WINDOW_S;  // the device's clock, which may differ from the browser's
    show(data.sensors.find((s) => s.pin === PIN) || { status: "unavailable" }, data.now);
    draw((data.history["dht22:" + PIN] || []).filter((p) => p.taken_at > since), data.now);
  } catch (e) {
    $("status").textContent = "Device unreachable, retrying…";
  }
}
refresh();
setInterval(refresh, 3000);
"""


def status_line(state: dict) -> str:
    """E.g. "Updated 2 s ago" or "Sensor timeout — last good reading 42 s ago"."""
    if state["error"] is None:
        return f"Updated {state['age_s']} s ago"
    problem = PROBLEMS.get(state["error"], f"Sensor {state['error']}")
    return f"{problem} — last good reading {state['age_s']} s ago" if "age_s" in state else problem


def render_page(title: str, state: dict, pin: int) -> str:
    def value(key: str, unit: str) -> str:
        return f"{state[key]:.1f} {unit}" if key in state else "—"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{STYLE}</style></head>
<body><main id="main" class="{"failing" if state["error"] else ""}">
<h1>{escape(title)}</h1>
<p id="status">{escape(status_line(state))}</p>
<div class="cards">
<div class="card"><span>Temperature</span>
<b id="temperature">{value("temperature_c", "°C")}</b></div>
<div class="card"><span>Humidity</span><b id="humidity">{value("humidity_pct", "%")}</b></div>
</div>
<figure class="card"><svg viewBox="0 0 300 100" preserveAspectRatio="none" aria-hidden="true">
<polyline id="line" points=""/></svg>
<figcaption id="range">The temperature history needs JavaScript.</figcaption>
</figure>
</main>
<script>const PIN = {pin}, STATE = {json.dumps(state)}, PROBLEMS = {json.dumps(PROBLEMS)};
{SCRIPT}</script>
</body></html>"""
