"""`reliefhub demo`: a relief operation modelled on the Shanghai 2022 lockdown, loaded and driven end to end
through the public HTTP API only.

The scenario (`scenario.py`, from the data in `data.py`) is generated from a seed — same seed, same sites,
needs, donors and gifts: recipient sites in Shanghai's 16 districts (hospitals, residents' committees, street
offices, nursing homes, makeshift shelters, schools used as quarantine points, NGOs), each posting medical and
living-supply needs; companies, foundations, people and volunteer groups offering goods (some checked by a
working group) and cash pledges into the operation's special funds (`funds.py`), most of them paid; purchases
paid from the funds whose rules allow where the goods go, and one the rules refuse. Then the operation runs
(`driver.py`, over the client in `client.py`): matching proposes, a coordinator accepts, logistics plans
shipments by itself, carriers move them through district sub-centers, every site confirms receipt with its
handover PIN (a few short, with a reason) and gives feedback; finally the impact report, a donor's public
tracking page, each fund's accounts and the operation's public accounts.

`run_demo` is the core: it takes an `httpx.AsyncClient` (a server's URL, or the in-process gateway in tests)
and the settings that sign tokens, and returns a `Summary`. `run_cli` (`console.py`) wraps it for
`reliefhub demo`.
"""

from reliefhub.demo.client import DemoError
from reliefhub.demo.console import run_cli
from reliefhub.demo.data import DISTRICTS
from reliefhub.demo.driver import run_demo
from reliefhub.demo.scenario import Scenario, build_scenario
from reliefhub.demo.summary import Summary, fund_table, summary_table

__all__ = [
    "DISTRICTS",
    "DemoError",
    "Scenario",
    "Summary",
    "build_scenario",
    "fund_table",
    "run_cli",
    "run_demo",
    "summary_table",
]
