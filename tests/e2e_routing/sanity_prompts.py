"""Requests anyone would tier the same way: what the router must get right.

Written by hand as a test set, never trained on: greetings, one-line facts,
translations, unit conversions and short edits go to the small tier;
multi-step proofs, system design, long code reviews and tool-using agent turns
go to the large one.
"""

from __future__ import annotations

from typing import Any

REVIEW_PY = """import sqlite3, os, pickle, threading
from flask import Flask, request

app = Flask(__name__)
CACHE = {}
lock = threading.Lock()

def get_db():
    return sqlite3.connect(os.environ.get("DB", "app.db"))

@app.route("/user")
def user():
    name = request.args.get("name")
    db = get_db()
    rows = db.execute(f"SELECT id, email FROM users WHERE name = '{name}'").fetchall()
    return {"rows": rows}

@app.route("/import", methods=["POST"])
def import_data():
    data = pickle.loads(request.data)
    for item in data:
        CACHE[item["id"]] = item
    return {"ok": True}

def expensive(n):
    if n in CACHE:
        return CACHE[n]
    total = 0
    for i in range(n):
        for j in range(n):
            total += i * j
    CACHE[n] = total
    return total

@app.route("/compute")
def compute():
    n = int(request.args["n"])
    t = threading.Thread(target=expensive, args=(n,))
    t.start()
    return {"result": CACHE.get(n)}

@app.route("/delete", methods=["GET"])
def delete():
    uid = request.args.get("id")
    db = get_db()
    db.execute("DELETE FROM users WHERE id = " + uid)
    return {"deleted": uid}
"""
REVIEW_GO = """package main

import (
    "encoding/json"
    "net/http"
    "sync"
    "time"
)

type Counter struct {
    hits map[string]int
    mu   sync.Mutex
}

var c = Counter{hits: map[string]int{}}

func handler(w http.ResponseWriter, r *http.Request) {
    key := r.URL.Query().Get("k")
    go func() {
        c.hits[key]++
    }()
    resp, err := http.Get("http://backend/" + key)
    defer resp.Body.Close()
    if err != nil {
        w.WriteHeader(500)
        return
    }
    var out map[string]interface{}
    json.NewDecoder(resp.Body).Decode(&out)
    json.NewEncoder(w).Encode(out)
}

func flusher() {
    for {
        c.mu.Lock()
        for k, v := range c.hits {
            save(k, v)
        }
        c.mu.Unlock()
        time.Sleep(time.Second)
    }
}

func save(k string, v int) {}

func main() {
    go flusher()
    http.HandleFunc("/", handler)
    http.ListenAndServe(":8080", nil)
}
"""
REVIEW_JS = """const express = require("express");
const fs = require("fs");
const app = express();
app.use(express.json());

let sessions = {};

app.post("/login", (req, res) => {
  const { user, password } = req.body;
  const users = JSON.parse(fs.readFileSync("users.json"));
  if (users[user] && users[user].password == password) {
    const token = Math.random().toString(36).slice(2);
    sessions[token] = user;
    res.cookie("token", token);
    return res.send("ok");
  }
  res.status(401).send("Invalid password for " + user);
});

app.get("/file", (req, res) => {
  const name = req.query.name;
  res.send(fs.readFileSync("/srv/files/" + name, "utf8"));
});

app.get("/search", async (req, res) => {
  const q = req.query.q;
  const results = [];
  for (const id of Object.keys(await loadAll())) {
    const item = await fetchItem(id);
    if (item.title.includes(q)) results.push(item);
  }
  res.send(`<h1>Results for ${q}</h1>` + results.map(r => r.title).join("<br>"));
});

async function loadAll() { return JSON.parse(fs.readFileSync("items.json")); }
async function fetchItem(id) { return (await loadAll())[id]; }

app.listen(3000);
"""


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Search a customer's orders",
            "parameters": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}, "status": {"type": "string"}},
                "required": ["customer_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund part or all of an order",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "amount_usd": {"type": "number"},
                    "reason": {"type": "string"},
                },
                "required": ["order_id", "amount_usd"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Email the customer",
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {"type": "string"},
                    "subject": {"type": "string"},
                    "body": {"type": "string"},
                },
                "required": ["to", "subject", "body"],
            },
        },
    },
]
REPO_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file of the repository",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run_tests",
            "description": "Run the test suite and return failures",
            "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Write a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
            },
        },
    },
]
AGENT_1: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You are a support agent for an online store. Use the tools to act; never invent order data.",
        },
        {
            "role": "user",
            "content": "Customer C-1042 says two of their last three orders arrived damaged. Find them, refund the damaged items in full, and email the customer a summary with the refund amounts.",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search_orders", "arguments": '{"customer_id": "C-1042"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": '[{"order_id": "O-88", "total": 42.5, "items": ["mug", "plate"], "note": "damaged: plate"}, {"order_id": "O-91", "total": 19.0, "items": ["vase"], "note": "damaged: vase"}, {"order_id": "O-95", "total": 64.0, "items": ["lamp"], "note": ""}]',
        },
    ],
    "tools": TOOLS,
}
AGENT_2: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You are a coding agent working in a Python repository. Use the tools; run the tests after every change.",
        },
        {
            "role": "user",
            "content": "The test suite fails since the last release. Find the cause, fix it without breaking the public API, and make sure every test passes.",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "run_tests", "arguments": "{}"},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_a",
            "content": "FAILED tests/test_money.py::test_rounding - AssertionError: assert Decimal('0.01') == Decimal('0.02')\nFAILED tests/test_money.py::test_split - ValueError: cannot split 10 into 3 equal parts",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "money/split.py"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_b",
            "content": "from decimal import Decimal, ROUND_HALF_UP\n\ndef split(total, parts):\n    share = (Decimal(total) / parts).quantize(Decimal('0.01'), ROUND_HALF_UP)\n    if share * parts != Decimal(total):\n        raise ValueError(f'cannot split {total} into {parts} equal parts')\n    return [share] * parts\n",
        },
    ],
    "tools": REPO_TOOLS,
}
AGENT_3: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You are a research agent. Plan, call tools, and cite what the tools return.",
        },
        {
            "role": "user",
            "content": "Compare our refund rate by product category for the last two quarters, explain what changed, and draft an email to the operations lead with three concrete recommendations.",
        },
    ],
    "tools": [
        *TOOLS,
        {
            "type": "function",
            "function": {
                "name": "run_sql",
                "description": "Run a read-only SQL query on the analytics warehouse",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        },
    ],
}
SMALL: list[dict[str, Any]] = [
    user("Hi!"),
    user("Hello, how are you today?"),
    user("thanks, that's all for today"),
    user("What is the capital of Italy?"),
    user("What year did World War II end?"),
    user("Who wrote Romeo and Juliet?"),
    user("Translate 'good morning' into Spanish."),
    user("How do you say 'thank you' in Japanese?"),
    user("Translate to French: Where is the train station?"),
    user("Convert 5 miles to kilometers."),
    user("How many ounces are in a pound?"),
    user("What is 72 degrees Fahrenheit in Celsius?"),
    user("Fix the typos: 'I recieved your mesage yesterday.'"),
    user("Make this sentence more polite: Send me the report now."),
    user("Give me a synonym for 'happy'."),
    user("Rewrite in the past tense: She walks to school every day."),
]
LARGE: list[dict[str, Any]] = [
    user(
        "Prove that there are infinitely many prime numbers, and then prove that there are infinitely many primes of the form 4k+3. Justify every step."
    ),
    user(
        "Prove that the square root of 2 is irrational, then generalize the proof to show that the square root of n is irrational for every positive integer n that is not a perfect square."
    ),
    user(
        "Let f be continuous on [0,1] and differentiable on (0,1) with f(0)=0 and f(1)=1. Prove that there exist distinct a and b in (0,1) such that f'(a) f'(b) = 1."
    ),
    user(
        "Prove by induction that 1^3 + 2^3 + ... + n^3 = (n(n+1)/2)^2 for every positive integer n, then derive a closed form for 1^4 + 2^4 + ... + n^4 and prove it."
    ),
    user(
        "Design a globally distributed URL shortener that handles 100k writes per second and 1M reads per second. Cover the data model, ID generation, sharding, caching, consistency, failure modes and capacity estimates."
    ),
    user(
        "Design the architecture of a real-time collaborative document editor like Google Docs: conflict resolution (operational transformation vs CRDTs), presence, offline editing, storage and scaling. Justify each trade-off."
    ),
    user(
        "Design a payment processing system that guarantees exactly-once charges across client retries, network partitions and partial failures. Cover idempotency keys, the ledger schema, reconciliation with the card network and auditing."
    ),
    user(
        "Review this Flask service for bugs, security vulnerabilities and performance problems. Explain each issue and its severity, then give a corrected version of the whole file.\n\n```python\n"
        + REVIEW_PY
        + "```"
    ),
    user(
        "Review this Go HTTP server for data races, resource leaks and error-handling bugs. For each problem explain the failure it causes, then rewrite the program correctly.\n\n```go\n"
        + REVIEW_GO
        + "```"
    ),
    user(
        "Do a thorough security and correctness review of this Express app. List every vulnerability with an exploit example and a fix, then provide the fixed code.\n\n```javascript\n"
        + REVIEW_JS
        + "```"
    ),
    AGENT_1,
    AGENT_2,
    AGENT_3,
    user(
        "Implement a lock-free multi-producer multi-consumer queue in C++ using atomics, explain the memory ordering of every operation, and prove that it is linearizable and free of the ABA problem."
    ),
]
