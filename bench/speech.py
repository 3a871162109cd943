"""Driven by bench/speech.sh: sizes per format and time to first byte, streamed or not."""

import json
import os
import statistics
import subprocess
import time
import urllib.request

BASE, TOKEN, RUNS = os.environ["BASE"], os.environ["TOKEN"], int(os.environ["RUNS"])
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
WORDS = ("the quick brown fox jumps over the lazy dog while the sun goes down behind "
         "the quiet hills and the river keeps running to the sea. ")
TEXT = (WORDS * 60)[:4990]


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=HEADERS)
    return urllib.request.urlopen(request, timeout=120)


def first_byte(body):
    """Seconds to the first byte of the answer's body, and to its end."""
    started = time.perf_counter()
    with call("POST", "/v1/generations", body) as answer:
        answer.read(1)
        first = time.perf_counter() - started
        answer.read()
        return first, time.perf_counter() - started


voice = json.load(call("GET", "/v1/voices?limit=1"))["data"][0]["id"]

print(f"== bytes per minute of audio ({len(TEXT)} characters, espeak-ng, default settings)")
print(f"{'format':8} {'bytes':>10} {'seconds':>8} {'bytes/min':>11} {'vs wav':>7}")
sizes = {}
for fmt in ["wav", "mp3", "opus", "flac", "pcm"]:
    created = json.load(call("POST", "/v1/generations", {"voice_id": voice, "text": TEXT, "format": fmt}))
    seconds = created["duration_ms"] / 1000
    sizes[fmt] = created["size_bytes"] / seconds * 60
    print(f"{fmt:8} {created['size_bytes']:>10} {seconds:>8.1f} {sizes[fmt]:>11.0f} "
          f"{sizes[fmt] / sizes['wav']:>7.3f}")

print(f"\n== time to first byte, {len(TEXT)} characters, mp3, medians of {RUNS}")
rows = {}
for label, stream in [("whole (201)", False), ("streamed (200)", True)]:
    runs = [first_byte({"voice_id": voice, "text": TEXT, "stream": stream}) for _ in range(RUNS)]
    rows[label] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    print(f"{label:16} first byte {rows[label][0] * 1000:7.0f} ms   last byte {rows[label][1] * 1000:7.0f} ms")
whole, streamed = rows["whole (201)"][0], rows["streamed (200)"][0]
print(f"streamed / whole, first byte: {streamed / whole:.3f}")
