"""The original demo's dashboard: the host hands over the latest reading, this returns HTML.

The demo contract has no requests, so the page reloads itself to stay current.
"""

from wit_world import exports

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>WASI Python Dashboard (demo contract)</title>
<style>
  body {{ font-family: system-ui, sans-serif; background: #1e1e2e; color: #cdd6f4;
         text-align: center; margin: 0; padding: 2rem 1rem; }}
  h1 {{ color: #89b4fa; font-size: 1.6rem; }}
  .reading {{ display: inline-block; background: #313244; border-radius: 12px;
              padding: 1.25rem 2rem; margin: .5rem; min-width: 9rem; }}
  .value {{ font-size: 2.5rem; font-weight: 600; }}
  .label {{ color: #a6adc8; }}
</style>
</head>
<body>
<h1>WASI Python Dashboard (demo contract)</h1>
<div class="reading"><div class="value">{temperature:.1f} °C</div>
<div class="label">Temperature</div></div>
<div class="reading"><div class="value">{humidity:.1f} %</div>
<div class="label">Humidity</div></div>
<p class="label">Rendered by Python inside WebAssembly</p>
</body>
</html>
"""


class DashboardLogic(exports.DashboardLogic):
    def render(self, temperature: float, humidity: float) -> str:
        return PAGE.format(temperature=temperature, humidity=humidity)
