"""The demo's workload: a multi-agent company's chat traffic, planned then replayed.

The plan is a pure function of the prompt set, a request count and a seed, so
every demo run sends the same requests in the same order. Five workflows with
their agents and steps stand in for a real company's agent fleet: support
triage and invoice extraction repeat themselves (cache hits), research and
code review ask hard questions (the large tier), and a travel concierge calls
tools.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import TYPE_CHECKING, Any, TextIO

from proxy.pipeline.request import TAG_HEADERS

if TYPE_CHECKING:
    import httpx

SYSTEM = (
    "You are an agent in Acme's operations team. Acme sells project-management software "
    "to small and medium businesses in Europe and North America. Answer briefly and "
    "precisely. Follow the company style guide: plain words, no marketing language, "
    "no promises about release dates, amounts always with their currency, dates in "
    "ISO 8601. Never include personal data of one customer in a message to another. "
    "When a request is ambiguous, say what you assumed. When you do not know, say so "
    "and name who could know: billing questions go to finance, outages to the on-call "
    "engineer, contract questions to legal. Keep answers under 200 words unless the "
    "task asks for a design, a proof or code."
)
CUSTOMERS = ("Globex", "Initech", "Umbrella", "Hooli", "Soylent", "Vandelay", "Wonka", "Stark")
FORECASTS = ("sunny, 24 C", "light rain, 14 C", "overcast, 9 C", "thunderstorms, 28 C")
CITIES = ("Lisbon", "Berlin", "Tokyo", "Nairobi", "Lima", "Oslo")


def weather_tool() -> dict[str, Any]:
    """The concierge's one tool, in the OpenAI tools format."""
    return {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and forecast for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "day": {"type": "string"}},
                "required": ["city"],
            },
        },
    }


@dataclass(frozen=True, slots=True)
class PromptSet:
    """The prompts the demo replays, by kind."""

    tickets: tuple[str, ...]
    invoices: tuple[str, ...]
    chores: tuple[str, ...]
    medium: tuple[str, ...]
    hard: tuple[str, ...]
    tools: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DemoCall:
    """One chat completion the demo sends, with the tags naming who spent it."""

    agent: str
    workflow: str
    step: str
    run: str
    body: Mapping[str, Any]

    def headers(self) -> dict[str, str]:
        """The ``x-spendgate-*`` tag headers."""
        agent, workflow, step, run = TAG_HEADERS
        return {agent: self.agent, workflow: self.workflow, step: self.step, run: self.run}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the clients saw: how many requests were answered with which status."""

    sent: int
    statuses: Mapping[int, int]
    seconds: float

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 400)


def load_prompts() -> PromptSet:
    """The prompt set shipped in ``proxy/demo/data/demo_prompts.json``."""
    text = resources.files("proxy.demo").joinpath("data/demo_prompts.json").read_text("utf-8")
    data = json.loads(text)
    return PromptSet(**{f.name: tuple(str(p) for p in data[f.name]) for f in fields(PromptSet)})


@dataclass(frozen=True, slots=True)
class Models:
    """The models clients ask for: most ask for the big one, one team pins the small one."""

    requested: str
    pinned: str


def _body(prompt: str, *, model: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    return {"model": model, "messages": messages, **extra}


def _near_repeat(body: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same question dressed differently: fields that cannot change the answer."""
    variant = dict(body)
    choice = rng.randrange(3)
    if choice == 0:
        variant["user"] = f"employee-{rng.randrange(1000)}"
    elif choice == 1:
        variant["metadata"] = {"ticket": str(rng.randrange(10_000))}
    else:
        variant["store"] = False
    return variant


class _Planner:
    """Builds each workflow's runs; one instance per plan, seeded.

    Hot tickets, invoices and cities come back again and again (the cache's
    share); everything else carries its run's own context, as real agents'
    prompts do, so it goes upstream.
    """

    def __init__(self, prompts: PromptSet, rng: random.Random, models: Models) -> None:
        self.prompts = prompts
        self.rng = rng
        self.models = models
        self.runs: Counter[str] = Counter()

    def _ask(self, prompt: str, **extra: Any) -> dict[str, Any]:
        return _body(prompt, model=self.models.requested, **extra)

    def run_id(self, workflow: str) -> str:
        self.runs[workflow] += 1
        return f"{workflow}-{self.runs[workflow]:03d}"

    def _unique(self, prompt: str, run: str) -> str:
        customer = self.rng.choice(CUSTOMERS)
        return f"{prompt}\n\nContext: account {customer}, case {run}."

    def support(self) -> list[DemoCall]:
        run = self.run_id("support-triage")
        if self.rng.random() < 0.6:
            classify = self._ask(self.rng.choice(self.prompts.tickets), temperature=0)
            if self.rng.random() < 0.5:
                classify = _near_repeat(classify, self.rng)
        else:
            classify = self._ask(
                self._unique(self.rng.choice(self.prompts.tickets), run), temperature=0
            )
        reply = self._ask(self._unique(self.rng.choice(self.prompts.medium), run))
        return [
            DemoCall("triage-bot", "support-triage", "classify", run, classify),
            DemoCall("responder", "support-triage", "draft-reply", run, reply),
        ]

    def research(self) -> list[DemoCall]:
        run = self.run_id("research-report")
        wf, pick = "research-report", self.rng.choice
        plan = self._ask(self._unique(pick(self.prompts.hard), run))
        research = self._ask(self._unique(pick(self.prompts.medium), run))
        # The writer streams its summary, as a chat front end would.
        summary = self._ask(
            self._unique(pick(self.prompts.chores), run),
            max_tokens=200,
            stream=True,
            stream_options={"include_usage": True},
        )
        return [
            DemoCall("planner", wf, "plan", run, plan),
            DemoCall("researcher", wf, "research", run, research),
            DemoCall("writer", wf, "summarize", run, summary),
        ]

    def code_review(self) -> list[DemoCall]:
        run = self.run_id("code-review")
        hard = self._ask(self._unique(self.rng.choice(self.prompts.hard), run), max_tokens=800)
        lint = self._ask(self._unique(self.rng.choice(self.prompts.chores), run), temperature=0)
        return [
            DemoCall("reviewer", "code-review", "review", run, hard),
            DemoCall("linter", "code-review", "style", run, lint),
        ]

    def invoices(self) -> list[DemoCall]:
        run = self.run_id("invoice-extraction")
        if self.rng.random() < 0.5:
            prompt = self.rng.choice(self.prompts.invoices)  # the same invoice, sent again
        else:
            number, total = self.rng.randrange(10_000, 99_999), self.rng.randrange(50, 5_000)
            prompt = f"Extract the invoice number and total from: 'Invoice INV-{number}, total due {total}.00 EUR.'"
        # This team pins the small model itself: nothing to route, but repeats still hit.
        body = _body(prompt, model=self.models.pinned, temperature=0)
        return [DemoCall("extractor", "invoice-extraction", "extract", run, body)]

    def concierge(self) -> list[DemoCall]:
        run = self.run_id("travel-concierge")
        city = self.rng.choice(CITIES)
        prompt = self.rng.choice(self.prompts.tools).format(city=city)
        ask = self._ask(prompt, tools=[weather_tool()])
        # The agent's second turn, as recorded: the tool's result goes back for the answer.
        call = {
            "id": f"call_{run.replace('-', '_')}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
        }
        weather = {"city": city, "forecast": self.rng.choice(FORECASTS)}
        answer = dict(ask)
        answer["messages"] = [
            *ask["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(weather)},
        ]
        return [
            DemoCall("concierge", "travel-concierge", "lookup", run, ask),
            DemoCall("concierge", "travel-concierge", "answer", run, answer),
        ]


def plan_workload(
    prompts: PromptSet, *, total: int, models: Models, seed: int = 7
) -> list[DemoCall]:
    """``total`` calls from the workflows in a fixed mix, deterministic for a seed."""
    rng = random.Random(seed)
    planner = _Planner(prompts, rng, models)
    workflows: Sequence[tuple[Callable[[], list[DemoCall]], int]] = (
        (planner.support, 5),
        (planner.invoices, 3),
        (planner.research, 2),
        (planner.code_review, 2),
        (planner.concierge, 1),
    )
    makers = [maker for maker, weight in workflows for _ in range(weight)]
    calls: list[DemoCall] = []
    while len(calls) < total:
        calls.extend(rng.choice(makers)())
    return calls[:total]


@dataclass
class Progress:
    """A progress bar on a terminal, plain periodic lines anywhere else."""

    total: int
    out: TextIO
    width: int = 30
    done: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)
    _last_line: int = field(default=-1, init=False, repr=False)

    def advance(self, status: int) -> None:
        self.done += 1
        if status >= 400:
            self.failed += 1
        if self.out.isatty():
            self._draw()
            return
        # About ten lines for the whole replay, whatever its size.
        step = max(1, self.total // 10)
        if self.done == self.total or (
            self.done % step == 0 and self.done // step != self._last_line
        ):
            self._last_line = self.done // step
            print(f"replayed {self.done}/{self.total} requests", file=self.out, flush=True)

    def _draw(self) -> None:
        filled = self.width * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\n" if self.done == self.total else ""
        errors = f", {self.failed} failed" if self.failed else ""
        self.out.write(f"\r[{bar}] {self.done}/{self.total} requests{errors}{end}")
        self.out.flush()


async def replay(
    calls: Sequence[DemoCall],
    *,
    base_url: str,
    api_key: str,
    concurrency: int,
    progress: Progress,
) -> ReplayResult:
    """Send every call through the proxy over HTTP, ``concurrency`` at a time."""
    import httpx  # imported here: the CLI loads this module for every command

    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[DemoCall] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30.0
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                call = queue.get_nowait()
                status = await _send(client, call)
                statuses[status] += 1
                progress.advance(status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ReplayResult(len(calls), dict(statuses), time.monotonic() - started)


async def _send(client: httpx.AsyncClient, call: DemoCall) -> int:
    import httpx

    try:
        response = await client.post(
            "/v1/chat/completions", json=dict(call.body), headers=call.headers()
        )
    except httpx.HTTPError:
        return 599  # no answer at all: counted as a failure, like a gateway would
    return response.status_code
