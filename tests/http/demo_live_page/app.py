"""A dashboard as the original demo's was: its page fetches ``/api`` every 2 s to update."""

from wit_world import exports

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>live</title></head>
<body>
<h1>Rendered with {temperature:.1f} °C</h1>
<ul id="readings"></ul>
<script>
async function update() {{
  const data = await (await fetch("/api")).json();
  document.getElementById("readings").innerHTML = data.readings
    .map((r) => `<li>${{r.sensor_id}}: ${{r.temperature.toFixed(1)}} °C</li>`).join("");
}}
update();
setInterval(update, 2000);
</script>
</body></html>
"""


class DashboardLogic(exports.DashboardLogic):
    def render(self, temperature: float, humidity: float) -> str:
        return PAGE.format(temperature=temperature)
